"""Which L0 QEMU the rig runs, and what it can do.

The system qemu-system-* is used when it is new enough; otherwise (Debian 12 ships 7.2)
a pinned QEMU from trixie-backports is unpacked into a private root in the cache and run
through that root's own dynamic loader, so its newer glibc never meets the host's.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from rig.core import timeouts
from rig.core.cache import Cache, read_meta
from rig.core.errors import UserError
from rig.core.json_object import JsonObject
from rig.core.progress import Progress
from rig.core.targets import TargetProfile
from rig.debian.apt import extract
from rig.debian.packages import PackageSet, Resolver, Want
from rig.debian.rootfs import relativize_absolute_symlinks
from rig.host.profiles import HostProfile, host_profile

# QEMU >= 10.1 has -device vfio-user-pci (a later issue's legacy device needs it).
PREFERRED_VERSION = (10, 1)
# What `rig boot` and the stock devices need: pseries ic-mode=xive and cap-nested-hv.
MINIMUM_VERSION = (7, 2)

def l0_qemu_set(host: HostProfile) -> PackageSet:
    """The private L0 QEMU's packages, for this host's architecture."""
    return PackageSet(name="l0-qemu", arch=host.name, suites=("trixie", "trixie-backports"),
                      wants=(Want(("qemu-system-x86", "qemu-system-ppc"), release="trixie-backports"),))


def private_binary(root: Path, meta: JsonObject, profile: TargetProfile, host: HostProfile) -> QemuBinary:
    """How to start the target's qemu-system-* out of a private root unpacked for this host:
    through the root's own dynamic loader (its glibc never meets the host's)."""
    libdirs = [root / "usr/lib" / host.triplet, root / "lib" / host.triplet]
    return QemuBinary(
        path=root / "usr/bin" / profile.qemu_system,
        source=f"private root, Debian qemu {meta['qemu_version']} from trixie-backports",
        prefix=[str(root / host.loader_path), "--library-path", ":".join(map(str, libdirs))],
        data_args=["-L", str(root / "usr/share/qemu"), "-L", str(root / "usr/share/seabios")],
        env={"QEMU_MODULE_DIR": str(root / "usr/lib" / host.triplet / "qemu")},
    )


def parse_version(text: str) -> tuple[int, int, int]:
    m = re.search(r"version (\d+)\.(\d+)(?:\.(\d+))?", text)
    if not m:
        raise ValueError(f"no QEMU version in {text!r}")
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


# QEMU's seccomp filter: no obsolete system calls, no setuid, no fork or exec, no
# scheduler or resource changes. Nothing the rig's QEMUs do needs them (migration to a file
# opens it; vfio-user and QMP are sockets the rig made).
SANDBOX = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"


def option_value(value: object) -> str:
    """A value inside a QEMU option string (path=..., logfile=...): a comma is doubled, or
    QEMU would take what follows it for the next option (an --out with a comma)."""
    return str(value).replace(",", ",,")


@dataclass
class QemuBinary:
    """How to start one qemu-system-* and what it is."""

    path: Path                       # the qemu-system-* file itself
    source: str                      # "system" or "private root (trixie-backports ...)"
    prefix: list[str] = field(default_factory=list)     # loader and its options, if any
    data_args: list[str] = field(default_factory=list)  # -L firmware dirs
    env: dict[str, str] = field(default_factory=dict)

    def argv(self, *args: str) -> list[str]:
        return [*self.prefix, str(self.path), *self.data_args, *args]

    def run(self, *args: str, timeout: float = timeouts.QEMU_QUERY_S) -> str:
        r = subprocess.run(self.argv(*args), env={**os.environ, **self.env},
                           capture_output=True, text=True, timeout=timeout)
        return r.stdout + r.stderr

    @cached_property
    def version_text(self) -> str:
        return (self.run("-version").splitlines() or [""])[0].strip()

    @cached_property
    def version(self) -> tuple[int, int, int]:
        try:
            return parse_version(self.version_text)
        except (ValueError, IndexError):
            raise UserError(f"{self.path} does not run as QEMU: it printed {self.version_text!r} "
                            "for -version") from None

    @cached_property
    def has_sandbox(self) -> bool:
        """Built with seccomp: -help lists -sandbox only then."""
        return "-sandbox" in self.run("-help")

    @cached_property
    def devices(self) -> set[str]:
        return set(re.findall(r'^name "([^"]+)"', self.run("-device", "help"), re.M))

    def has_device(self, name: str) -> bool:
        return name in self.devices

    def describe(self) -> str:
        v = ".".join(map(str, self.version))
        return f"{self.path} ({self.source}), QEMU {v}"

    def require(self, minimum: tuple[int, int], why: str) -> None:
        if self.version[:2] < minimum:
            raise UserError(f"{self.describe()} is too old for {why}: needs QEMU >= "
                            f"{minimum[0]}.{minimum[1]}; omit --qemu to use the rig's own QEMU")


def system_qemu(profile: TargetProfile) -> QemuBinary | None:
    found = shutil.which(profile.qemu_system)
    return QemuBinary(Path(found), "system") if found else None


def explicit_qemu(path: str) -> QemuBinary:
    # Absolute: a bare name ("./qemu" is "qemu" to pathlib) would be looked up in PATH when
    # run, and so would not be the file that was checked.
    p = Path(os.path.abspath(path))
    if not (p.is_file() and os.access(p, os.X_OK)):
        raise UserError(f"--qemu {path}: not an executable file")
    return QemuBinary(p, "given with --qemu")


class PrivateQemu:
    """QEMU from trixie-backports unpacked into the cache, keyed by its resolved packages."""

    def __init__(self, cache: Cache, resolver: Resolver, progress: Progress, host: HostProfile | None = None):
        self.cache, self.resolver, self.progress = cache, resolver, progress
        self.host = host or host_profile()
        self.packages = l0_qemu_set(self.host)

    def root(self) -> tuple[Path, dict]:
        lock = self.resolver.lock(self.packages)
        entry = self.cache.build("qemu-root", lock.key(), lambda tmp: self._build(tmp, lock))
        return entry / "root", read_meta(entry)

    def _build(self, tmp: Path, lock) -> dict:
        debs = self.resolver.fetch(self.packages, lock)
        self.progress.step(f"unpacking L0 QEMU ({len(debs)} packages)")
        root = tmp / "root"
        extract(list(debs.values()), root)
        relativize_absolute_symlinks(root)
        qemu = lock.by_name("qemu-system-x86")
        return {"qemu_version": qemu.version, "packages": {p.name: p.version for p in lock.packages}}

    def binary(self, profile: TargetProfile) -> QemuBinary:
        root, meta = self.root()
        return private_binary(root, meta, profile, self.host)


def choose_qemu(profile: TargetProfile, cache: Cache, resolver: Resolver, progress: Progress,
                explicit: str | None = None) -> QemuBinary:
    """--qemu if given; else the system QEMU if new enough; else the private root."""
    if explicit:
        q = explicit_qemu(explicit)
        q.require(MINIMUM_VERSION, "the rig")
        return q
    found = system_qemu(profile)
    if found and found.version[:2] >= PREFERRED_VERSION:
        return found
    return PrivateQemu(cache, resolver, progress).binary(profile)

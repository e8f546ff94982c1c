"""The host (L0) itself: the Debian packages the rig needs there, checked and installed."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from rig.core import timeouts
from rig.core.errors import UserError
from rig.core.progress import Progress
from rig.core.targets import PROFILES, TargetProfile
from rig.debian.apt import KEYRING
from rig.host.profiles import HostProfile, host_profile


@dataclass(frozen=True)
class HostNeed:
    package: str    # Debian package that provides it
    probe: str      # a command on PATH, or an absolute file path
    why: str

    def present(self) -> bool:
        return Path(self.probe).exists() if self.probe.startswith("/") else bool(shutil.which(self.probe))


def host_needs(host: HostProfile) -> tuple[HostNeed, ...]:
    """What the rig needs on this host; compilers native or cross, as the host profile says."""
    compilers: list[HostNeed] = []
    for prof in PROFILES.values():
        # Rebuilding vfio-pci-core.ko without the fix (--l1-vfio unfixed), with the compiler
        # the Debian kernels were built with (gcc-12), and fast mode's static program.
        compilers.append(HostNeed(host.gcc_package(prof.triplet), f"{prof.triplet}-gcc-12",
                                  f"compiles the {prof.debian_arch} vfio modules"))
        libc, probe = host.libc_dev(prof.debian_arch, prof.triplet)
        compilers.append(HostNeed(libc, probe,
                                  f"static {prof.debian_arch} build of the userspace VFIO consumer (fast mode)"))
    return (
        HostNeed("apt", "apt-get", "resolves and downloads the guests' Debian packages"),
        HostNeed("dpkg", "dpkg-deb", "unpacks Debian packages (any architecture) without running them"),
        HostNeed("debian-archive-keyring", KEYRING, "verifies the Debian archive's signatures"),
        HostNeed("make", "make", "runs kbuild for the rebuilt vfio modules"),
        *compilers,
        HostNeed("dwarves", "pahole", "generates BTF for the rebuilt modules (the kernel checks it)"),
        HostNeed("libelf1", host.lib("libelf.so.1"), "used by kbuild's modpost"),
        HostNeed("libssl3", host.lib("libssl.so.3"), "used by kbuild's sign-file"),
        HostNeed("flex", "flex", "builds kconfig (checking the shipped config fragments)"),
        HostNeed("bison", "bison", "builds kconfig (checking the shipped config fragments)"),
        HostNeed("shellcheck", "shellcheck", "checks the shell scripts the rig runs in guests (unit tests)"),
        HostNeed("chromium", "chromium", "opens report.html in a real browser (integration tests)"),
        # Building an L1 kernel from source (docs/usage.md's recipe): objtool needs libelf's
        # headers, certificates need OpenSSL's, timeconst needs bc, modules_install depmod.
        HostNeed("libelf-dev", "/usr/include/libelf.h", "builds a kernel from source (objtool)"),
        HostNeed("libssl-dev", "/usr/include/openssl/ssl.h", "builds a kernel from source (certificates)"),
        HostNeed("bc", "bc", "builds a kernel from source"),
        HostNeed("kmod", "depmod", "installs a kernel's modules (depmod)"),
        HostNeed("ccache", "ccache", "serves a kernel build what an earlier build compiled (rig kernel build)"),
    )


def kernel_build_needs(host: HostProfile, prof: TargetProfile) -> tuple[HostNeed, ...]:
    """What building a kernel from source for prof needs here (rig.kernel.build)."""
    probes = {"make", f"{prof.triplet}-gcc-12", "flex", "bison", "bc", "/usr/include/libelf.h",
              "/usr/include/openssl/ssl.h", f"{host.triplet}-gcc-12", "ccache"}
    return tuple(n for n in host_needs(host) if n.probe in probes)


def missing_for_kernel_build(prof: TargetProfile, host: HostProfile | None = None) -> list[HostNeed]:
    return [n for n in kernel_build_needs(host or host_profile(), prof) if not n.present()]


def missing(host: HostProfile | None = None) -> list[HostNeed]:
    return [n for n in host_needs(host or host_profile()) if not n.present()]


def install_missing(progress: Progress) -> list[str]:
    """apt-get install what is missing when root; otherwise a clear error listing it."""
    need = missing()
    if not need:
        return []
    names = sorted({n.package for n in need})
    if os.geteuid() != 0:
        raise UserError(f"missing host packages: {' '.join(names)}; install them "
                        f"(sudo apt-get install {' '.join(names)}) or run rig setup as root")
    progress.step(f"installing host packages: {' '.join(names)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", *names]):
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeouts.APT_COMMAND_S)
        if r.returncode != 0:
            raise UserError(f"{' '.join(cmd[:2])} failed: {r.stderr.strip().splitlines()[-1:]}")
    return names

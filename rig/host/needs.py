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
from rig.debian.apt import KEYRING


@dataclass(frozen=True)
class HostNeed:
    package: str    # Debian package that provides it
    probe: str      # a command on PATH, or an absolute file path
    why: str

    def present(self) -> bool:
        return Path(self.probe).exists() if self.probe.startswith("/") else bool(shutil.which(self.probe))


HOST_NEEDS = (
    HostNeed("apt", "apt-get", "resolves and downloads the guests' Debian packages"),
    HostNeed("dpkg", "dpkg-deb", "unpacks Debian packages (any architecture) without running them"),
    HostNeed("debian-archive-keyring", KEYRING, "verifies the Debian archive's signatures"),
    # Rebuilding vfio-pci-core.ko without the fix (--l1-vfio unfixed), with the compiler the
    # Debian kernels were built with (gcc-12), natively for amd64 and cross for ppc64el.
    HostNeed("make", "make", "runs kbuild for the rebuilt vfio modules"),
    HostNeed("gcc-12", "x86_64-linux-gnu-gcc-12", "compiles the amd64 vfio modules"),
    HostNeed("gcc-12-powerpc64le-linux-gnu", "powerpc64le-linux-gnu-gcc-12",
             "compiles the ppc64el vfio modules"),
    HostNeed("dwarves", "pahole", "generates BTF for the rebuilt modules (the kernel checks it)"),
    HostNeed("libelf1", "/usr/lib/x86_64-linux-gnu/libelf.so.1", "used by kbuild's modpost"),
    HostNeed("libssl3", "/usr/lib/x86_64-linux-gnu/libssl.so.3", "used by kbuild's sign-file"),
    HostNeed("libc6-dev", "/usr/include/x86_64-linux-gnu/sys/eventfd.h",
             "static amd64 build of the userspace VFIO consumer (fast mode)"),
    HostNeed("libc6-dev-ppc64el-cross", "/usr/powerpc64le-linux-gnu/include/sys/eventfd.h",
             "static ppc64el build of the userspace VFIO consumer (fast mode)"),
    HostNeed("flex", "flex", "builds kconfig (checking the shipped config fragments)"),
    HostNeed("bison", "bison", "builds kconfig (checking the shipped config fragments)"),
    HostNeed("shellcheck", "shellcheck", "checks the shell scripts the rig runs in guests (unit tests)"),
)


def missing() -> list[HostNeed]:
    return [n for n in HOST_NEEDS if not n.present()]


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

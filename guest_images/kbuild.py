"""Out-of-tree modules for the Debian kernel the images boot: built against that kernel's
own headers (its .config, Module.symvers and BTF vmlinux) with the compiler it was built
with, so that they load into the stock kernel (unsigned: they taint it, as docs/facts.md
says). The unfixed vfio modules (vfio_module) and the L1 helper (l1_helper) are built so."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from rig.core import timeouts
from rig.core.errors import InfraError, UserError
from rig.core.targets import TargetProfile
from rig.debian.apt import extract
from rig.debian.packages import Lock, PackageSet, Resolver
from rig.debian.rootfs import relativize_absolute_symlinks
from rig.host.profiles import HostProfile

from .recipe import kbuild_host_packages, kbuild_target_packages


def compiler(profile: TargetProfile, host: HostProfile) -> str:
    """The compiler the kernel was built with (Debian's gcc-12 for the target), native or
    cross as the host profile says; Debian names both <triplet>-gcc-12."""
    cc = f"{profile.triplet}-gcc-12"
    if not shutil.which(cc):
        raise UserError(f"the compiler {cc} is missing (needed to build modules for the L1 kernel): "
                        f"apt-get install {host.gcc_package(profile.triplet)}, or run `rig setup` as root")
    return cc


class KernelHeaders:
    """One Debian kernel's build tree for external modules: the packages it comes from
    (their locks are part of a module's cache key) and, once unpacked, `make M=...`."""

    def __init__(self, resolver: Resolver, host: HostProfile, profile: TargetProfile, kernel_release: str):
        self.resolver, self.host, self.profile, self.release = resolver, host, profile, kernel_release
        target = kbuild_target_packages(profile, kernel_release)
        host_set = kbuild_host_packages(profile, kernel_release, host)
        self.sets: list[tuple[PackageSet, Lock]] = [(target, resolver.lock(target)),
                                                    (host_set, resolver.lock(host_set))]

    def keys(self) -> list[str]:
        return [lock.key() for _, lock in self.sets]

    def unpack(self, work: Path) -> tuple[Path, dict[str, Path]]:
        """The headers directory under work, and every fetched package by name (the
        linux-source one is left packed: callers take what they need from it)."""
        debs: dict[str, Path] = {}
        for pset, lock in self.sets:
            debs.update(self.resolver.fetch(pset, lock))
        extract([p for n, p in debs.items() if not n.startswith("linux-source-")], work / "root")
        relativize_absolute_symlinks(work / "root")
        headers = work / "root/usr/src" / f"linux-headers-{self.release}"
        # Debian's Makefile includes the -common one by its absolute /usr/src path.
        common = next((work / "root/usr/src").glob("linux-headers-*-common"))
        (headers / "Makefile").write_text(f"include {common}/Makefile\n")
        compiler(self.profile, self.host)
        return headers, debs

    def make(self, headers: Path, src: Path, what: str) -> None:
        cmd = ["make", "-C", str(headers), f"M={src}", "modules", f"-j{os.cpu_count() or 1}"]
        if not self.host.native(self.profile.triplet):
            # Debian's headers name a cross compiler only when the kernel was built cross.
            cmd.append(f"CROSS_COMPILE={self.profile.triplet}-")
        r = subprocess.run(cmd, capture_output=True, text=True,
                           env={**os.environ, "LC_ALL": "C", "DEBIAN_KERNEL_USE_CCACHE": ""},
                           timeout=timeouts.BUILD_S)
        if r.returncode != 0:
            tail = (r.stderr or r.stdout).strip().splitlines()[-5:]
            raise InfraError(f"building {what} failed: {' | '.join(tail)}")

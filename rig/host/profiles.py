"""Host profiles: everything that differs between the machines the rig runs on (L0), as
data, the way target profiles (rig.core.targets) hold what differs between guests.

The rig runs on Debian's amd64, arm64 and ppc64el. What depends on the host: the private L0
QEMU's packages and dynamic loader, which compilers are native and which cross, where host
libraries live, and which target's guests KVM can run (x86_64 on amd64, ppc64 on ppc64el;
none on arm64, whose guests the rig does not have).
"""

from __future__ import annotations

import platform
from dataclasses import dataclass

from rig.core.errors import UserError


@dataclass(frozen=True)
class HostProfile:
    name: str                 # dpkg architecture
    machine: str              # uname -m
    triplet: str              # multiarch directory name
    loader: str               # the dynamic loader's file name in /usr/lib/<triplet>/
    kvm_target: str | None    # the target (--arch) whose guests KVM runs here, if any

    @property
    def loader_path(self) -> str:
        """The dynamic loader inside a Debian root (the real file, not the /lib64 link)."""
        return f"usr/lib/{self.triplet}/{self.loader}"

    def lib(self, name: str) -> str:
        return f"/usr/lib/{self.triplet}/{name}"

    def native(self, triplet: str) -> bool:
        return triplet == self.triplet

    def gcc_package(self, triplet: str) -> str:
        """Debian's gcc-12 for code running on `triplet`: native here, or a cross compiler.
        Either way the compiler is called <triplet>-gcc-12."""
        return "gcc-12" if self.native(triplet) else f"gcc-12-{triplet.replace('_', '-')}"

    def libc_dev(self, debian_arch: str, triplet: str) -> tuple[str, str]:
        """(package, a file it installs) for building static programs for `triplet`."""
        if self.native(triplet):
            return "libc6-dev", f"/usr/include/{triplet}/sys/eventfd.h"
        return f"libc6-dev-{debian_arch}-cross", f"/usr/{triplet}/include/sys/eventfd.h"


AMD64 = HostProfile("amd64", "x86_64", "x86_64-linux-gnu", "ld-linux-x86-64.so.2", "x86_64")
ARM64 = HostProfile("arm64", "aarch64", "aarch64-linux-gnu", "ld-linux-aarch64.so.1", None)
PPC64EL = HostProfile("ppc64el", "ppc64le", "powerpc64le-linux-gnu", "ld64.so.2", "ppc64")
HOSTS = {h.machine: h for h in (AMD64, ARM64, PPC64EL)}


def host_profile(machine: str | None = None) -> HostProfile:
    """The profile of this machine (or of the given `uname -m`); one clear line if the rig
    does not run there."""
    m = machine or platform.machine()
    try:
        return HOSTS[m]
    except KeyError:
        supported = ", ".join(f"{h.machine} ({h.name})" for h in HOSTS.values())
        raise UserError(f"this host is {m}: the rig runs on {supported}") from None

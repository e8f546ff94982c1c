"""What goes into the guest images, as data: Debian package sets per architecture."""

from __future__ import annotations

from rig.packages import PackageSet, Want
from rig.targets import TargetProfile

# The 6.12 line of bookworm-backports: it has the vfio INTx fix (6.12.58+), it is built
# for amd64 and ppc64el alike, and pseries guests need >= 6.11 for VFIO (DESIGN.md 3).
KERNEL_RELEASE = "bookworm-backports"
USERLAND_SUITE = "bookworm"
# Programs the guests run; busybox provides the shell and every small tool.
L2_PROGRAMS = ("/bin/busybox", "/usr/sbin/dropbear")


def guest_packages(profile: TargetProfile) -> PackageSet:
    """One set per arch: the kernel (alone), and the userland both guests are cut from."""
    userland = ("busybox-static", "dropbear-bin", profile.qemu_package, *profile.l1_extra_packages)
    return PackageSet(
        name=f"guest-{profile.debian_arch}",
        arch=profile.debian_arch,
        suites=(USERLAND_SUITE, KERNEL_RELEASE),
        wants=(
            Want((f"linux-image-{profile.kernel_flavour}",), release=KERNEL_RELEASE, deps=False),
            Want(userland, release=None),
        ),
    )


def l1_programs(profile: TargetProfile) -> tuple[str, ...]:
    return L2_PROGRAMS + (f"/usr/bin/{profile.qemu_system}",)

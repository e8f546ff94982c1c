"""What goes into the guest images, as data: Debian package sets per architecture."""

from __future__ import annotations

from rig.core.targets import TargetProfile
from rig.debian.packages import PackageSet, Want
from rig.host.profiles import HostProfile

# The 6.12 line of bookworm-backports: it has the vfio INTx fix (6.12.58+), it is built
# for amd64 and ppc64el alike, and pseries guests need >= 6.11 for VFIO (docs/mechanism.md).
KERNEL_RELEASE = "bookworm-backports"
USERLAND_SUITE = "bookworm"
# Programs the guests run; busybox provides the shell and every small tool.
L2_PROGRAMS = ("/bin/busybox", "/usr/sbin/dropbear")


def guest_packages(profile: TargetProfile) -> PackageSet:
    """One set per arch: the kernel (alone), and the userland both guests are cut from."""
    userland = ("busybox-static", "dropbear-bin", "pciutils", profile.qemu_package,
                *profile.l1_extra_packages)
    return PackageSet(
        name=f"guest-{profile.debian_arch}",
        arch=profile.debian_arch,
        suites=(USERLAND_SUITE, KERNEL_RELEASE),
        wants=(
            Want((f"linux-image-{profile.kernel_flavour}",), release=KERNEL_RELEASE, deps=False,
                 metapackage=True),
            Want(userland, release=None),
        ),
    )


def l1_programs(profile: TargetProfile) -> tuple[str, ...]:
    # lspci: what a VFIO developer looks at first (DisINTx+/- among the rest)
    return L2_PROGRAMS + (f"/usr/bin/{profile.qemu_system}", "/usr/bin/lspci")


def kernel_abi(kernel_release: str, profile: TargetProfile) -> str:
    """6.12.95+deb12-powerpc64le -> 6.12.95+deb12 (what -common and kbuild are named by)."""
    return kernel_release.removesuffix(f"-{profile.kernel_flavour}")


def kbuild_target_packages(profile: TargetProfile, kernel_release: str) -> PackageSet:
    """The kernel's arch-specific headers (its .config, Module.symvers, BTF vmlinux)."""
    return PackageSet(name=f"kbuild-{profile.debian_arch}-{kernel_release}", arch=profile.debian_arch,
                      suites=(USERLAND_SUITE, KERNEL_RELEASE),
                      wants=(Want((f"linux-headers-{kernel_release}",), KERNEL_RELEASE, deps=False),))


def kbuild_host_packages(profile: TargetProfile, kernel_release: str, host: HostProfile) -> PackageSet:
    """What runs on the build host: kbuild's tools (for the host's architecture), the common
    headers, the source."""
    abi = kernel_abi(kernel_release, profile)
    series = ".".join(abi.split(".")[:2])
    return PackageSet(name=f"kbuild-host-{abi}", arch=host.name, suites=(USERLAND_SUITE, KERNEL_RELEASE),
                      wants=(Want((f"linux-headers-{abi}-common", f"linux-kbuild-{abi}",
                                   f"linux-source-{series}"), KERNEL_RELEASE, deps=False),))

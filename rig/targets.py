"""Target profiles: everything that differs between architectures, as data.

The rest of the rig never asks "if arch == ...": it reads a field of the profile.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import UserError


@dataclass(frozen=True)
class TargetProfile:
    name: str                     # the rig's name for it: --arch value
    debian_arch: str              # dpkg architecture of the guest packages
    triplet: str                  # multiarch library directory name
    elf_machine: str              # e_machine of the guest kernel (pyelftools name)
    qemu_system: str              # qemu-system-* binary that emulates it
    qemu_package: str             # Debian package holding that binary
    machine: str                  # -M value for L1 (L0 starts it)
    cpu: str                      # -cpu value for L1 under TCG
    l1_devices: tuple[str, ...]   # extra -device for L1 (IOMMU, ...)
    console: str                  # guest console device name
    kernel_flavour: str           # Debian linux-image-<flavour> metapackage suffix
    kernel_file: str              # file in /boot of the kernel package to boot
    cmdline: tuple[str, ...]      # arch-specific kernel command line
    nic_model: str                # NIC for user networking
    l1_modules: tuple[str, ...]   # modules L1 loads at boot (vfio, kvm, iommu backend)
    l1_extra_packages: tuple[str, ...] = ()  # firmware for L1's own QEMU (L2's BIOS)
    qemu_firmware: tuple[str, ...] = ()     # firmware files L1's QEMU needs to boot L2
    kvm_cpu: str = "host"
    host_machines: tuple[str, ...] = field(default=())  # uname -m values that can use KVM
    kvm_machine_options: tuple[str, ...] = ()           # -M options needed under KVM

    def machine_options(self, accel: str) -> tuple[str, ...]:
        return self.kvm_machine_options if accel == "kvm" else ()


# Modules every guest loads: the NIC driver (user networking for SSH), and what the
# power-button watcher needs where the platform delivers powerdown as an input event.
COMMON_MODULES = ("virtio_net",)

X86_64 = TargetProfile(
    name="x86_64",
    debian_arch="amd64",
    triplet="x86_64-linux-gnu",
    elf_machine="EM_X86_64",
    qemu_system="qemu-system-x86_64",
    qemu_package="qemu-system-x86",
    machine="q35",
    # -cpu max under TCG is an AMD CPU with SVM+NPT: kvm_amd nested=1 works in L1.
    cpu="max",
    # caching-mode=on lets the vIOMMU sit in front of assigned (vfio/vfio-user) devices.
    l1_devices=("intel-iommu,caching-mode=on",),
    console="ttyS0",
    kernel_flavour="amd64",
    kernel_file="vmlinuz-{version}",
    # no_timer_check: a loaded TCG host once made the IO-APIC timer check panic (DESIGN.md 4).
    cmdline=("intel_iommu=on", "no_timer_check", "tsc=reliable"),
    nic_model="virtio-net-pci",
    # x86 powerdown is an ACPI button press: the guest sees it through evdev.
    l1_modules=COMMON_MODULES + ("button", "evdev", "vfio", "vfio-pci", "vfio_iommu_type1",
                                 "kvm_amd"),
    l1_extra_packages=("seabios",),
    qemu_firmware=("/usr/share/seabios/bios-256k.bin", "/usr/share/qemu/kvmvapic.bin",
                   "/usr/share/qemu/linuxboot_dma.bin"),
    host_machines=("x86_64",),
    # intel-iommu's interrupt remapping needs the split irqchip under KVM.
    kvm_machine_options=("kernel-irqchip=split",),
)

PPC64 = TargetProfile(
    name="ppc64",
    debian_arch="ppc64el",
    triplet="powerpc64le-linux-gnu",
    elf_machine="EM_PPC64",
    qemu_system="qemu-system-ppc64",
    qemu_package="qemu-system-ppc",
    # ic-mode=dual (default) reboots the guest once early in boot; POWER8 means XICS,
    # which can never show the bug. cap-nested-hv lets L1 run KVM-HV under TCG.
    machine="pseries,ic-mode=xive,cap-nested-hv=on",
    cpu="POWER9",
    l1_devices=(),
    console="hvc0",
    kernel_flavour="powerpc64le",
    kernel_file="vmlinux-{version}",
    cmdline=(),
    nic_model="virtio-net-pci",
    # pseries delivers powerdown as an EPOW event: the kernel runs /sbin/poweroff itself.
    l1_modules=COMMON_MODULES + ("vfio", "vfio-pci", "vfio_iommu_spapr_tce", "kvm-hv"),
    qemu_firmware=("/usr/share/qemu/slof.bin", "/usr/share/qemu/vof.bin"),
    host_machines=("ppc64le",),
)

PROFILES = {p.name: p for p in (X86_64, PPC64)}


def profile(name: str) -> TargetProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise UserError(f"unknown arch {name!r}: use one of {', '.join(sorted(PROFILES))}") from None

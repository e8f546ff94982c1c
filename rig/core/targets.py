"""Target profiles: everything that differs between architectures, as data.

The rest of the rig never asks "if arch == ...": it reads a field of the profile.
"""

from __future__ import annotations

from dataclasses import dataclass

from rig.core.errors import UserError


@dataclass(frozen=True)
class KvmModule:
    """A KVM module a CPU of this arch may need (L1 loads one to run L2 under KVM; the host
    loads one to run L1 under KVM)."""

    name: str                       # as modprobe takes it
    args: tuple[str, ...] = ()      # nesting on, where the module has the parameter
    cpu_flag: str | None = None     # the /proc/cpuinfo flag of a CPU it runs on; None: any of the arch

    @property
    def sysfs(self) -> str:
        """Its directory under /sys/module (modprobe takes kvm-hv, sysfs says kvm_hv)."""
        return self.name.replace("-", "_")

    def __str__(self) -> str:
        return " ".join((self.name, *self.args))


@dataclass(frozen=True)
class L2Profile:
    """How L1 runs L2 (with L1's own qemu-system-*), and what L1 loads to pass a device."""

    machine_tcg: str
    machine_kvm: str
    cpu_tcg: str
    console: str
    iommu_module: str             # VFIO IOMMU backend (not autoloaded on ppc64)
    kvm_modules: tuple[KvmModule, ...]   # one of them, by L1's CPU, gives L2 KVM
    extra_args: tuple[str, ...] = ()
    cmdline: tuple[str, ...] = ()
    cpu_kvm: str = "host"
    memory_mb: int = 512

    def machine(self, accel: str) -> str:
        return self.machine_kvm if accel == "kvm" else self.machine_tcg

    def cpu(self, accel: str) -> str:
        return self.cpu_kvm if accel == "kvm" else self.cpu_tcg


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
    l1_modules: tuple[str, ...]   # modules L1 loads at boot
    l2: L2Profile                 # how L1 runs L2
    interrupt_controllers: tuple[str, ...]  # --ic choices; the first is the default
    l1_extra_packages: tuple[str, ...] = ()  # firmware for L1's own QEMU (L2's BIOS)
    qemu_firmware: tuple[str, ...] = ()     # firmware files L1's QEMU needs to boot L2
    kvm_cpu: str = "host"
    # How KVM is proved to run this arch's guests before L1 gets it (rig.host.accel):
    # "test-guest" runs a 16-byte guest to its exit; "create-vm" creates a VM and asks it.
    kvm_probe: str = "create-vm"
    kvm_machine_options: tuple[str, ...] = ()           # -M options needed under KVM
    # -M options that give L1 virtualization for L2: always under TCG (emulated), under KVM
    # only if the host nests (without it QEMU refuses cap-nested-hv and L1 never starts).
    nesting_machine_options: tuple[str, ...] = ()
    # Where the device under test sits in L1: its own IOMMU group, so vfio can take it alone.
    device_bus_args: tuple[str, ...] = ()   # extra L0 arguments (a host bridge)
    device_bus: str | None = None           # bus= property for the device
    # Kernel options L1 needs (checked in a user's kernel before booting it), and the one
    # that gives L2 KVM (without it L2 runs under TCG).
    required_config: tuple[str, ...] = ()
    kvm_config: str = ""
    # Building a kernel for this target from source (the shipped config fragment's base).
    kbuild_arch: str = ""
    defconfig: str = ""
    cross_compile: str = ""
    kbuild_target: str = ""       # the make target that builds the image L0 boots
    kbuild_image: str = ""        # where it lands, under the build directory

    def machine_options(self, accel: str, nesting: bool = True) -> tuple[str, ...]:
        return (self.nesting_machine_options if nesting else ()) + \
            (self.kvm_machine_options if accel == "kvm" else ())

    def l1_machine(self, accel: str, ic: str | None = None, nesting: bool = True) -> str:
        ic = ic or self.interrupt_controllers[0]
        if ic not in self.interrupt_controllers:
            raise UserError(f"--ic {ic} does not apply to {self.name}: use one of "
                            f"{', '.join(self.interrupt_controllers)}")
        return ",".join([self.machine.format(ic=ic), *self.machine_options(accel, nesting)])

    @property
    def image_modules(self) -> tuple[str, ...]:
        """Every module the L1 image carries: boot ones and what the chain loads later."""
        return self.l1_modules + ("vfio-pci", self.l2.iommu_module, *(m.name for m in self.l2.kvm_modules))


# Modules every guest loads: the NIC driver (user networking for SSH), and what the
# power-button watcher needs where the platform delivers powerdown as an input event.
COMMON_MODULES = ("virtio_net",)
COMMON_CONFIG = ("CONFIG_PCI", "CONFIG_BLK_DEV_INITRD", "CONFIG_DEVTMPFS", "CONFIG_UNIX", "CONFIG_INET",
                 "CONFIG_VIRTIO_PCI", "CONFIG_VIRTIO_NET", "CONFIG_VFIO", "CONFIG_VFIO_PCI")

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
    # nokaslr (L1 and L2): kernel addresses are the link-time ones, the same every run and
    # in both layers, so a hung L2's vCPU address is named from L1's kallsyms.
    cmdline=("intel_iommu=on", "no_timer_check", "tsc=reliable", "nokaslr"),
    nic_model="virtio-net-pci",
    # x86 powerdown is an ACPI button press: the guest sees it through evdev.
    l1_modules=COMMON_MODULES + ("button", "evdev"),
    l2=L2Profile(
        machine_tcg="q35", machine_kvm="q35", cpu_tcg="max", console="ttyS0",
        iommu_module="vfio_iommu_type1",
        # L1's CPU decides: AMD (TCG's -cpu max is one) or Intel (-cpu host on an Intel
        # KVM host). nested=1: L2 may run a guest of its own; the KVM L2 was measured with it.
        kvm_modules=(KvmModule("kvm_intel", ("nested=1",), "vmx"), KvmModule("kvm_amd", ("nested=1",), "svm")),
        cmdline=("no_timer_check", "8250.nr_uarts=8", "nokaslr"),
    ),
    interrupt_controllers=("ioapic",),
    l1_extra_packages=("seabios",),
    qemu_firmware=("/usr/share/seabios/bios-256k.bin", "/usr/share/qemu/kvmvapic.bin",
                   "/usr/share/qemu/linuxboot_dma.bin"),
    kvm_probe="test-guest",
    # intel-iommu's interrupt remapping needs the split irqchip under KVM.
    kvm_machine_options=("kernel-irqchip=split",),
    required_config=COMMON_CONFIG + ("CONFIG_X86_64", "CONFIG_INTEL_IOMMU", "CONFIG_VFIO_IOMMU_TYPE1",
                                     "CONFIG_SERIAL_8250", "CONFIG_SERIAL_8250_CONSOLE"),
    kvm_config="CONFIG_KVM_AMD",
    kbuild_arch="x86", defconfig="x86_64_defconfig", cross_compile="x86_64-linux-gnu-",
    kbuild_target="bzImage", kbuild_image="arch/x86/boot/bzImage",
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
    machine="pseries,ic-mode={ic}",
    nesting_machine_options=("cap-nested-hv=on",),
    cpu="POWER9",
    l1_devices=(),
    console="hvc0",
    kernel_flavour="powerpc64le",
    kernel_file="vmlinux-{version}",
    cmdline=(),
    nic_model="virtio-net-pci",
    # pseries delivers powerdown as an EPOW event: the kernel runs /sbin/poweroff itself.
    l1_modules=COMMON_MODULES,
    l2=L2Profile(
        machine_tcg="pseries,ic-mode=xics",
        # A KVM-HV L2 inside a TCG L1 (DESIGN.md 4): the caps L1 cannot provide are off, and
        # 4k pages because L1 (the 4k-page Debian flavour) has no 64k pages to back them.
        machine_kvm=("pseries,ic-mode=xics,cap-cfpc=broken,cap-sbbc=broken,cap-ibs=broken,"
                     "cap-ccf-assist=off,cap-hpt-max-page-size=4k"),
        cpu_tcg="POWER9", console="hvc0",
        iommu_module="vfio_iommu_spapr_tce",
        kvm_modules=(KvmModule("kvm-hv"),),
        # Without a small DMA window: "Failed to create SPAPR window: Invalid argument".
        extra_args=("-global", "spapr-pci-host-bridge.dma_win_size=0x10000000",
                    "-global", "spapr-pci-host-bridge.ddw=off"),
    ),
    interrupt_controllers=("xive", "xics"),
    # A pseries PHB is one IOMMU group: the device gets a PHB of its own, or vfio refuses
    # ("group 0 is not viable") because virtio-net shares it.
    device_bus_args=("-device", "spapr-pci-host-bridge,index=1,id=rigphb"),
    device_bus="rigphb.0",
    required_config=COMMON_CONFIG + ("CONFIG_PPC_PSERIES", "CONFIG_CPU_LITTLE_ENDIAN", "CONFIG_PPC_XIVE_SPAPR",
                                     "CONFIG_HVC_CONSOLE", "CONFIG_VFIO_IOMMU_SPAPR_TCE"),
    kvm_config="CONFIG_KVM_BOOK3S_64_HV",
    kbuild_arch="powerpc", defconfig="ppc64le_defconfig", cross_compile="powerpc64le-linux-gnu-",
    kbuild_target="vmlinux", kbuild_image="vmlinux",
    qemu_firmware=("/usr/share/qemu/slof.bin", "/usr/share/qemu/vof.bin"),
)

PROFILES = {p.name: p for p in (X86_64, PPC64)}


def profile(name: str) -> TargetProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise UserError(f"unknown arch {name!r}: use one of {', '.join(sorted(PROFILES))}") from None

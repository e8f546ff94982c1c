"""x86_64 guests: Debian's amd64 kernel; L1 runs L2 on q35 with KVM (kvm_amd or kvm_intel by
L1's CPU) or TCG."""

from rig.core.targets.model import COMMON_CONFIG, COMMON_MODULES, KvmModule, L2Profile, TargetProfile

X86_64 = TargetProfile(
    name="x86_64",
    debian_arch="amd64",
    triplet="x86_64-linux-gnu",
    elf_machine="EM_X86_64",
    qemu_system="qemu-system-x86_64",
    qemu_package="qemu-system-x86",
    console="ttyS0",
    kernel_flavour="amd64",
    kernel_file="vmlinuz-{version}",
    # no_timer_check: a loaded TCG host once made the IO-APIC timer check panic (docs/facts.md).
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
        hotplug_bus_args=("-device", "pcie-root-port,id=righp,chassis=9,slot=9"),   # pciehp in L2
        hotplug_bus="righp",
    ),
    default_machine="q35",
    l1_extra_packages=("seabios",),
    qemu_firmware=("/usr/share/seabios/bios-256k.bin", "/usr/share/qemu/kvmvapic.bin",
                   "/usr/share/qemu/linuxboot_dma.bin"),
    kvm_probe="test-guest",
    required_config=COMMON_CONFIG + ("CONFIG_X86_64", "CONFIG_VFIO_IOMMU_TYPE1",
                                     "CONFIG_SERIAL_8250", "CONFIG_SERIAL_8250_CONSOLE"),
    kvm_config="CONFIG_KVM_AMD",
    kbuild_arch="x86", defconfig="x86_64_defconfig", cross_compile="x86_64-linux-gnu-",
    kbuild_target="bzImage", kbuild_image="arch/x86/boot/bzImage",
)

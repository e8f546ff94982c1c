"""ppc64 (little-endian POWER) guests: Debian's powerpc64le kernel; L1 runs L2 as a pseries
guest, under KVM-HV where L1 has it, else TCG."""

from rig.core.targets.model import COMMON_CONFIG, COMMON_MODULES, KvmModule, L2Profile, TargetProfile

PPC64 = TargetProfile(
    name="ppc64",
    debian_arch="ppc64el",
    triplet="powerpc64le-linux-gnu",
    elf_machine="EM_PPC64",
    qemu_system="qemu-system-ppc64",
    qemu_package="qemu-system-ppc",
    console="hvc0",               # pseries' vty and PowerNV's OPAL console alike
    kernel_flavour="powerpc64le",
    kernel_file="vmlinux-{version}",
    cmdline=(),
    nic_model="virtio-net-pci",
    # Powerdown comes as a platform event on both machines (pseries EPOW, OPAL on PowerNV):
    # the kernel runs /sbin/poweroff itself.
    l1_modules=COMMON_MODULES,
    l2=L2Profile(
        # x-vof: VOF instead of SLOF, as for L1 (pseries.py).
        machine_tcg="pseries,ic-mode=xics,x-vof=on",
        # A KVM-HV L2 inside a TCG L1 (docs/facts.md): the caps L1 cannot provide are off, and
        # 4k pages because L1 (the 4k-page Debian flavour) has no 64k pages to back them.
        machine_kvm=("pseries,ic-mode=xics,x-vof=on,cap-cfpc=broken,cap-sbbc=broken,cap-ibs=broken,"
                     "cap-ccf-assist=off,cap-hpt-max-page-size=4k"),
        cpu_tcg="POWER9", console="hvc0",
        iommu_module="vfio_iommu_spapr_tce",
        kvm_modules=(KvmModule("kvm-hv"),),
        # Without a small DMA window: "Failed to create SPAPR window: Invalid argument".
        extra_args=("-global", "spapr-pci-host-bridge.dma_win_size=0x10000000",
                    "-global", "spapr-pci-host-bridge.ddw=off"),
    ),
    default_machine="pseries",
    kvm_probe_machine="pseries",
    required_config=COMMON_CONFIG + ("CONFIG_CPU_LITTLE_ENDIAN", "CONFIG_HVC_DRIVER",
                                     "CONFIG_VFIO_IOMMU_SPAPR_TCE"),
    kvm_config="CONFIG_KVM_BOOK3S_64_HV",
    kbuild_arch="powerpc", defconfig="ppc64le_defconfig", cross_compile="powerpc64le-linux-gnu-",
    kbuild_target="vmlinux", kbuild_image="vmlinux",
    qemu_firmware=("/usr/share/qemu/vof.bin",),     # L2 boots with VOF (x-vof=on), not SLOF
)

"""pseries (ppc64): L1 is a guest of a POWER hypervisor, reaching XIVE (or XICS) through
hypercalls (Linux's sysdev/xive/spapr.c)."""

from rig.core.kinds import DeviceKind, InterruptController
from rig.core.targets.model import MachineProfile, NestedRestoreHelper

PSERIES = MachineProfile(
    name="pseries",
    arch="ppc64",
    legacy_tag="ppc64",
    description="POWER9 guest of a hypervisor (pseries), XIVE or XICS through hypercalls",
    # ic-mode=dual (default) reboots the guest once early in boot; POWER8 means XICS,
    # which can never show the bug. cap-nested-hv lets L1 run KVM-HV under TCG. x-vof: the
    # minimal Open Firmware (VOF) instead of SLOF, which only slowed the boot of a kernel
    # QEMU loads itself (docs/facts.md: about half the time to L1's shell).
    machine="pseries,ic-mode={ic},x-vof=on",
    cpu="POWER9",
    interrupt_controllers=(InterruptController.XIVE, InterruptController.XICS),
    traces={InterruptController.XIVE: "spapr-xive", InterruptController.XICS: "xics"},
    devices=(DeviceKind.PCI_SERIAL, DeviceKind.VIRTIO_SERIAL, DeviceKind.LEGACY, DeviceKind.LEGACY_2_3,
             DeviceKind.PCI_SERIAL_2_3),
    matrix_devices=(DeviceKind.PCI_SERIAL, DeviceKind.LEGACY),
    scenario_devices=(DeviceKind.PCI_SERIAL_2_3,),
    # Slots 1 and 5 of the device's PHB: spapr_pci swizzles (slot + pin) % 4 onto the PHB's
    # four LSIs (pci_spapr_map_irq()).
    shared_line=("addr=0x1", "addr=0x5"),
    matrix_skips={DeviceKind.LEGACY: ("vfio-user on pseries: QEMU 11.1.3 aborts at machine reset, and Linux on "
                                     "pseries never probes INTx masking (docs/findings/)")},
    nesting_machine_options=("cap-nested-hv=on",),
    # A pseries PHB is one IOMMU group: the device gets a PHB of its own, or vfio refuses
    # ("group 0 is not viable") because virtio-net shares it.
    device_bus_args=("-device", "spapr-pci-host-bridge,index=1,id=rigphb"),
    device_bus="rigphb.0",
    # Measured (docs/facts.md, "Chain snapshots"): L2 came back with "KVM: unknown exit,
    # hardware reason 3", H_NOT_AVAILABLE from H_ENTER_NESTED, whose partition table is 0.
    nested_kvm_snapshot_problem=("QEMU's pseries leaves the nested-HV partition table L1 registered "
                                 "(H_SET_PARTITION_TABLE) out of the migration stream: a restored L1 "
                                 "cannot enter its KVM L2 again (H_ENTER_NESTED fails, H_NOT_AVAILABLE)"),
    # kvm-hv registers its table once, at module init, from this static pointer: the helper
    # registers the same table again (measured: L2 runs on, same STALL).
    nested_kvm_restore_helper=NestedRestoreHelper("rig_nested_ptcr", "partition_tb_var", "pseries_partition_tb"),
    required_config=("CONFIG_PPC_PSERIES", "CONFIG_PPC_XIVE_SPAPR", "CONFIG_HVC_CONSOLE"),
)

"""q35 (x86_64): an IO-APIC, and an Intel vIOMMU so that L1 can pass a device on."""

from rig.core.kinds import DeviceKind, InterruptController
from rig.core.targets.model import MachineProfile

Q35 = MachineProfile(
    name="q35",
    arch="x86_64",
    legacy_tag="x86_64",
    description="PC with PCIe (q35), IO-APIC, Intel vIOMMU",
    machine="q35",
    # -cpu max under TCG is an AMD CPU with SVM+NPT: kvm_amd nested=1 works in L1.
    cpu="max",
    interrupt_controllers=(InterruptController.IOAPIC,),
    traces={InterruptController.IOAPIC: "ioapic"},
    devices=(DeviceKind.LEGACY, DeviceKind.PCI_SERIAL, DeviceKind.VIRTIO_SERIAL, DeviceKind.LEGACY_2_3,
             DeviceKind.PCI_SERIAL_2_3),
    # caching-mode=on lets the vIOMMU sit in front of assigned (vfio/vfio-user) devices.
    matrix_devices=(DeviceKind.PCI_SERIAL, DeviceKind.LEGACY),
    scenario_devices=(DeviceKind.PCI_SERIAL_2_3,),
    # Root-bus slots 0x10 and 0x14: q35 rotates INTA over its PIRQ links by slot, four apart
    # meet on one (the exclusive scenario's consumer checks that L1 gives both one IRQ).
    shared_line=("addr=0x10", "addr=0x14"),
    l1_devices=("intel-iommu,caching-mode=on",),
    hotplug_bus_args=("-device", "pcie-root-port,id=righp,chassis=9,slot=9"),
    hotplug_bus="righp",
    # intel-iommu's interrupt remapping needs the split irqchip under KVM.
    kvm_machine_options=("kernel-irqchip=split",),
    required_config=("CONFIG_INTEL_IOMMU",),
)

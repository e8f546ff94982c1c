"""PowerNV (ppc64): Linux on bare metal under OPAL (skiboot), driving XIVE natively
(Linux's sysdev/xive/native.c) and hosting KVM-HV guests: the machine of the original
report. QEMU's powernv9 runs only under TCG.

Its PHB4 host bridges have no I/O space (pci-serial's one BAR is unusable) and hang QEMU
with vfio-user-pci; the device under test is a virtio console with MSI-X off, whose INTx
reaches the PHB4's XIVE source (docs/facts.md, docs/findings/)."""

from rig.core.kinds import DeviceKind, InterruptController
from rig.core.targets.model import MachineProfile

VFIO_USER_HANG = ("QEMU hangs at start-up with -device vfio-user-pci on a PowerNV PHB4 "
                  "(docs/findings/qemu-pnv-phb4-vfio-user-hang.md); use --device virtio-serial")

POWERNV = MachineProfile(
    name="powernv",
    arch="ppc64",
    legacy_tag="ppc64-powernv",
    description="POWER9 bare metal (powernv9, skiboot), XIVE driven natively",
    machine="powernv9",
    cpu=None,
    interrupt_controllers=(InterruptController.XIVE,),
    traces={InterruptController.XIVE: "pnv-xive"},
    devices=(DeviceKind.VIRTIO_SERIAL, DeviceKind.VIRTIO_SERIAL_2_3),
    unsupported_devices={
        DeviceKind.PCI_SERIAL: ("a PowerNV PHB4 has no I/O space: pci-serial's only BAR (I/O) cannot be "
                                "used; use --device virtio-serial"),
        DeviceKind.PCI_SERIAL_2_3: ("a PowerNV PHB4 has no I/O space: pci-serial's only BAR (I/O) cannot be "
                                    "used; use --device virtio-serial-2.3"),
        DeviceKind.LEGACY: VFIO_USER_HANG,
        DeviceKind.LEGACY_2_3: VFIO_USER_HANG,
    },
    # -nodefaults leaves powernv9 without PHBs: one for the NIC, one for the device (each
    # PHB4 is an IOMMU group of its own), each with its root port. The BMC takes QMP's
    # powerdown to OPAL, which has Linux power off.
    matrix_devices=(DeviceKind.VIRTIO_SERIAL,),
    scenario_devices=(DeviceKind.VIRTIO_SERIAL_2_3,),
    # Functions 0 and 1 behind the root port: one slot, INTA of both, one LSI of the PHB4.
    shared_line=("addr=0.0,multifunction=on", "addr=0.1"),
    l0_args=("-device", "pnv-phb,chip-id=0,index=0,id=pcie.0",
             "-device", "pnv-phb-root-port,id=rignicport,bus=pcie.0,chassis=0,slot=0",
             "-device", "ipmi-bmc-sim,id=bmc0", "-device", "isa-ipmi-bt,bmc=bmc0,irq=10"),
    nic_bus="rignicport",
    device_bus_args=("-device", "pnv-phb,chip-id=0,index=1,id=pcie.1",
                     "-device", "pnv-phb-root-port,id=rigport,bus=pcie.1,chassis=1,slot=0"),
    device_bus="rigport",
    tcg_only="QEMU's powernv machine emulates the bare-metal hypervisor: it runs only under TCG",
    snapshot_problem=("QEMU migrates no state of powernv9's XIVE (pnv-xive), PSI and PHB4s (pnv-phb4, "
                      "pnv-phb-root-port): a restored L1 resumes with them as at reset and never answers "
                      "(docs/findings/qemu-powernv-migrates-without-its-controllers.md)"),
    required_config=("CONFIG_PPC_POWERNV", "CONFIG_PPC_XIVE_NATIVE", "CONFIG_HVC_OPAL"),
)

"""What a target is made of, as data: the guest architecture (TargetProfile: its Debian
packages, kernel, L2) and the machine L0 runs L1 on (MachineProfile: -M, CPU, buses,
interrupt controllers, which devices it can carry). One file per architecture and one per
machine sit beside this one; the rest of the rig never asks "if arch == ..." or
"if machine == ...": it reads a field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from rig.core.errors import UserError
from rig.core.kinds import Accelerator, DeviceKind, InterruptController


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
class NestedRestoreHelper:
    """The rig's L1 module (guest_images/l1_helper/<module>.c) that puts back, right after
    a restore, what L0 left out of the migration of L1's nested KVM guests. It is given the
    address of one kernel variable, read from L1's /proc/kallsyms."""

    module: str
    param: str          # module parameter that takes the address
    symbol: str         # the variable, as /proc/kallsyms names it


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
    # Where L1's QEMU hotplugs a passed-through device into a running L2 (QMP device_add), so
    # that a chain with a device that cannot migrate is saved before the device joins it
    # (rig.chain.chain); None: L2 gets the device on its command line only.
    hotplug_bus_args: tuple[str, ...] = ()
    hotplug_bus: str | None = None

    def machine(self, accel: str) -> str:
        return self.machine_kvm if accel == Accelerator.KVM else self.machine_tcg

    def cpu(self, accel: str) -> str:
        return self.cpu_kvm if accel == Accelerator.KVM else self.cpu_tcg


@dataclass(frozen=True)
class TargetProfile:
    """A guest architecture: what its images are cut from and how L1 runs L2."""

    name: str                     # the rig's name for it: --arch value
    debian_arch: str              # dpkg architecture of the guest packages
    triplet: str                  # multiarch library directory name
    elf_machine: str              # e_machine of the guest kernel (pyelftools name)
    qemu_system: str              # qemu-system-* binary that emulates it
    qemu_package: str             # Debian package holding that binary
    console: str                  # guest console device name
    kernel_flavour: str           # Debian linux-image-<flavour> metapackage suffix
    kernel_file: str              # file in /boot of the kernel package to boot
    cmdline: tuple[str, ...]      # arch-specific kernel command line
    nic_model: str                # NIC for user networking
    l1_modules: tuple[str, ...]   # modules L1 loads at boot
    l2: L2Profile                 # how L1 runs L2
    default_machine: str          # --machine when none is given
    l1_extra_packages: tuple[str, ...] = ()  # firmware for L1's own QEMU (L2's BIOS)
    qemu_firmware: tuple[str, ...] = ()     # firmware files L1's QEMU needs to boot L2
    kvm_cpu: str = "host"
    # How KVM is proved to run this arch's guests before L1 gets it (rig.host.accel):
    # "test-guest" runs a 16-byte guest to its exit; "create-vm" creates a VM of
    # kvm_probe_machine and asks it.
    kvm_probe: str = "create-vm"
    kvm_probe_machine: str = ""
    # Kernel options L1 needs on every machine (each machine adds its own), and the one
    # that gives L2 KVM (without it L2 runs under TCG).
    required_config: tuple[str, ...] = ()
    kvm_config: str = ""
    # Building a kernel for this target from source (the shipped config fragment's base).
    kbuild_arch: str = ""
    defconfig: str = ""
    cross_compile: str = ""
    kbuild_target: str = ""       # the make target that builds the image L0 boots
    kbuild_image: str = ""        # where it lands, under the build directory

    @property
    def image_modules(self) -> tuple[str, ...]:
        """Every module the L1 image carries: boot ones and what the chain loads later."""
        return self.l1_modules + ("vfio-pci", self.l2.iommu_module, *(m.name for m in self.l2.kvm_modules))


@dataclass(frozen=True)
class MachineProfile:
    """A machine L0 runs L1 on: its QEMU options, where the device under test sits, which
    interrupt controllers and devices it has. Devices it cannot carry say why."""

    name: str                     # --machine value
    arch: str                     # the TargetProfile whose guests it runs
    # How cell ids and run names spelled it before every machine was named (pseries was just
    # "ppc64", q35 "x86_64"): still accepted by `rig matrix --cells`, for users' scripts.
    legacy_tag: str
    description: str              # one line for rig doctor and the docs
    machine: str                  # -M value ({ic} where the controller is a machine option)
    cpu: str | None               # -cpu value under TCG; None: the machine's own
    interrupt_controllers: tuple[InterruptController, ...]   # --ic choices; the first is the default
    # How L0's trace shows each controller on this machine (rig.trace.l0_ic's classes by name):
    # the same XIVE is driven through hypercalls on pseries and natively on PowerNV.
    traces: Mapping[InterruptController, str]
    devices: tuple[DeviceKind, ...]                           # --device choices; the first is the default
    # Devices it cannot carry, with why and what to use instead (bad input, before anything runs).
    unsupported_devices: Mapping[DeviceKind, str] = field(default_factory=dict)
    # The devices its matrix cells run (the verdict matrix, rig.matrix.cells), and those of
    # them the stock parts cannot run today, with why (probed again by every `rig run`).
    matrix_devices: tuple[DeviceKind, ...] = ()
    # Devices whose cells run only the scenarios beyond the flow (vfio's 2.3 path, the contrast
    # to the non-2.3 one the matrix devices take): rig matrix --scenarios.
    scenario_devices: tuple[DeviceKind, ...] = ()
    matrix_skips: Mapping[DeviceKind, str] = field(default_factory=dict)
    l1_devices: tuple[str, ...] = ()   # extra -device for L1 (IOMMU, ...)
    l0_args: tuple[str, ...] = ()      # other L0 arguments (buses -nodefaults leaves out, a BMC)
    nic_bus: str | None = None         # bus= of L1's NIC, where the machine has no default bus
    # Where the device under test sits in L1: its own IOMMU group, so vfio can take it alone.
    device_bus_args: tuple[str, ...] = ()   # extra L0 arguments (a host bridge)
    device_bus: str | None = None           # bus= property for the device
    # The exclusive scenario's two devices on one INTx line: -device options of the device under
    # test and of its twin, on the device's bus, at slots whose INTA the bus routes to one line.
    shared_line: tuple[str, ...] = ()      # (the device's options, its twin's)
    # Where a device that cannot migrate (vfio-user) is added once L1 runs, so that L1 is
    # saved and restored without it: an empty bus with hotplug (None: it is there from the start).
    hotplug_bus_args: tuple[str, ...] = ()
    hotplug_bus: str | None = None
    kvm_machine_options: tuple[str, ...] = ()           # -M options needed under KVM
    # -M options that give L1 virtualization for L2: always under TCG (emulated), under KVM
    # only if the host nests (without it QEMU refuses cap-nested-hv and L1 never starts).
    nesting_machine_options: tuple[str, ...] = ()
    # Why L1 cannot run under KVM on this machine at all (None: it can, where the host has KVM).
    tcg_only: str | None = None
    # Why a booted L1 of this machine cannot be saved and restored (rig.guests.snapshot), if so.
    snapshot_problem: str | None = None
    # Why L1 cannot be saved with a KVM L2 running in it (rig.chain.chain's chain snapshots),
    # if so: L0 must carry the state it keeps for L1's nested guests across the migration.
    nested_kvm_snapshot_problem: str | None = None
    # What makes up for that problem in L1 after a restore (only where the rig can build it
    # for L1's kernel: its own Debian kernel); None: nothing does.
    nested_kvm_restore_helper: NestedRestoreHelper | None = None
    required_config: tuple[str, ...] = ()   # kernel options L1 needs on this machine

    @property
    def tag(self) -> str:
        """How cell ids and run names spell it: the arch, then the machine (as its key)."""
        return self.key

    @property
    def key(self) -> str:
        return f"{self.arch}-{self.name}"

    def machine_options(self, accel: str, nesting: bool = True) -> tuple[str, ...]:
        return (self.nesting_machine_options if nesting else ()) + \
            (self.kvm_machine_options if accel == Accelerator.KVM else ())

    def l1_machine(self, accel: str, ic: str | None = None, nesting: bool = True) -> str:
        ic = ic or self.interrupt_controllers[0]
        if ic not in self.interrupt_controllers:
            raise UserError(f"--ic {ic} does not apply to {self.arch} {self.name}: use one of "
                            f"{', '.join(self.interrupt_controllers)}")
        return ",".join([self.machine.format(ic=ic), *self.machine_options(accel, nesting)])

    def trace_of(self, ic: str) -> str:
        return self.traces[InterruptController(ic)]

    def device_problem(self, device: str) -> str | None:
        """Why this machine cannot carry the device, or None."""
        return self.unsupported_devices.get(DeviceKind(device))


# Modules every guest loads: the NIC driver (user networking for SSH).
COMMON_MODULES = ("virtio_net",)
# L2 also drives the device passed to it: 8250_pci is built into Debian's kernels,
# virtio_console (for --device virtio-serial) is a module.
L2_MODULES = COMMON_MODULES + ("virtio_console",)
COMMON_CONFIG = ("CONFIG_PCI", "CONFIG_BLK_DEV_INITRD", "CONFIG_DEVTMPFS", "CONFIG_UNIX", "CONFIG_INET",
                 "CONFIG_VIRTIO_PCI", "CONFIG_VIRTIO_NET", "CONFIG_VFIO", "CONFIG_VFIO_PCI")

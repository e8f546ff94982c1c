"""What a run found out about its chain, as types: the parts of result.json that the
chain fills in as they become known (rig.reports.result puts them together)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class L0Facts:
    qemu: str                         # the L0 QEMU: path, where from, version
    accel: str                        # kvm or tcg
    accel_reason: str
    nesting: str = ""                 # what the host means for L2 (rig.host.virt)
    command: list[str] = field(default_factory=list)   # L0's command line for L1
    qemu_sha256: str = ""             # the qemu-system binary's content


@dataclass
class L1Facts:
    kernel: str                       # uname -r
    kernel_package: dict[str, str] | None   # Debian's package (name, version, from), or how a user's kernel came
    vfio_modules: str                 # fixed, unfixed, or "the kernel under test's"
    vfio_rebuilt: list[str]           # the vfio modules rebuilt without the fix (none: as built)
    vfio_intx_fix: bool | None        # read from the binary; None: could not be read
    image: str = ""                   # the image's cache entry: the content key of its inputs


@dataclass
class KernelInputFacts:
    """A user's L1 kernel: how it was given and what the checks said."""
    source: str
    version_string: str
    config: str
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ChainFacts:
    """What the chain found out about itself."""

    l1_device: str = ""
    l1_started: str = ""          # a GuestStart: booted, or restored from a snapshot of a booted L1
    l1_snapshot: str = ""         # the snapshot's key (restored, or saved by this boot); "": none
    iommu_group: str = ""
    l1_qemu: str = ""             # L1's qemu-system-* (runs L2): its -version line
    l1_nointxmask: bool = False   # vfio_pci nointxmask in L1
    l1_disintx_writable: bool = False  # whether the command register's bit 10 sticks in L1
    # The device's IRQ count in L1 when vfio-pci took it: the descriptor keeps counting from
    # there (on PowerNV L1's virtio driver takes a few at boot). None: no driver had it.
    l1_irq_count_at_bind: int | None = None
    l1_lspci: str = ""
    l1_kvm_module: str = ""       # what L1 loaded to run L2 under KVM (by its CPU), e.g. "kvm_amd nested=1"
    l2_accel: str = ""
    l2_accel_reason: str = ""
    l2_command: list[str] = field(default_factory=list)
    l2_kernel: str = ""
    l2_boot_failures: list[str] = field(default_factory=list)   # why L2 boots failed (restarted)
    l2_started: str = ""          # a GuestStart: booted, or restored inside L1 with a snapshot of it; "": no L2
    l2_snapshot: str = ""         # the chain snapshot's key (restored, or saved after this L2 booted)
    bound_snapshot: str = ""      # fast mode: the key of L1's snapshot with the device bound (restored or saved)
    # The rig's helper module loaded in L1 after the restore (rig.core.targets'
    # nested_kvm_restore_helper), with its own line; "": none was (always so when booted).
    l1_restore_helper: str = ""
    consumer_device: str = ""     # the device as the consumer (L2, or L1 userspace) sees it
    consumer_tty: str = ""
    consumer_irq: str = ""
    l1_modules: str = ""
    l1_interrupts_at_end: str = ""
    l2_interrupts_at_end: str = ""


@dataclass(frozen=True)
class RunFacts:
    """Known before the drive: which chain this run built (None until known). Made by
    rig.chain.setup.running_chain from the L0, image and device stages' results."""

    arch: str
    ic: str
    consumer: str
    device: str | None = None
    device_reason: str | None = None
    l0: L0Facts | None = None
    l1: L1Facts | None = None
    l1_kernel_input: KernelInputFacts | None = None
    machine: str = ""

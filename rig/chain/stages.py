"""The chain's stages and what each returns, frozen: L1 started (booted or restored), the
device bound in L1, L2 chosen and started, the chain snapshot, the consumer, the
interrupt tables at the end. rig.chain.chain runs them in turn; result.json's `chain`
(ChainFacts) is made from their results in one place, `chain_facts`, and a restored chain
takes its stages' results back from the ChainFacts saved beside its snapshot."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

from rig.chain.bind import Bound
from rig.chain.facts import ChainFacts
from rig.chain.reader import ConsumerStarted
from rig.core.json_object import JsonObject
from rig.core.kinds import Accelerator, GuestStart
from rig.guests.snapshot import BadSnapshot


@dataclass(frozen=True)
class L1Started:
    """The L1 stage: how L1 came up."""

    how: GuestStart
    snapshot: str = ""            # the snapshot's key (restored, or saved by this boot); "": none
    restore_helper: str = ""      # the restore helper's line, when one ran after a chain restore


@dataclass(frozen=True)
class Binding:
    """The bind stage: the device given to vfio-pci in L1, and what L1 said about it."""

    bound: Bound
    kvm_module: str               # what L1 loaded to run L2 under KVM, e.g. "kvm_amd nested=1"; "": none
    lspci: str
    modules: str
    l1_qemu: str                  # L1's qemu-system-* -version line

    @classmethod
    def of_saved(cls, f: ChainFacts) -> Binding:
        """The bind as recorded beside a chain snapshot (the restored L1 has it bound)."""
        return cls(Bound(f.l1_device, f.iommu_group, bool(f.l1_kvm_module), f.l1_nointxmask,
                         f.l1_disintx_writable, f.l1_irq_count_at_bind),
                   f.l1_kvm_module, f.l1_lspci, f.l1_modules, f.l1_qemu)


@dataclass(frozen=True)
class L2Plan:
    """How L2 is to run: its accelerator (and why) and L1's command line for it."""

    accel: Accelerator
    accel_reason: str
    command: tuple[str, ...]

    @classmethod
    def of_saved(cls, f: ChainFacts) -> L2Plan | None:
        return cls(Accelerator(f.l2_accel), f.l2_accel_reason, tuple(f.l2_command)) if f.l2_accel else None


@dataclass(frozen=True)
class L2Started:
    """The L2 stage: L2 up (booted, or restored inside L1)."""

    how: GuestStart
    kernel: str


class InterruptTables(NamedTuple):
    """/proc/interrupts of L1 and L2 (empty without L2) after the drive."""

    l1: str
    l2: str


@dataclass(frozen=True)
class ChainStages:
    """Every stage's result so far (None: not run, or failed)."""

    l1: L1Started | None = None
    binding: Binding | None = None
    l2_plan: L2Plan | None = None
    l2: L2Started | None = None
    l2_boot_failures: tuple[str, ...] = ()
    chain_snapshot: str = ""      # the chain snapshot's key (restored, or saved after the set-up)
    consumer: ConsumerStarted | None = None
    tables: InterruptTables | None = None


@dataclass(frozen=True)
class SavedChain:
    """What is recorded beside a chain snapshot (its metadata): the chain's facts at the
    save (the bind, L2's plan), L2's kernel, the restore helper's address."""

    facts: ChainFacts
    l2_kernel: str = ""
    restore_helper_address: str = ""

    def to_meta(self) -> JsonObject:
        return {"chain": asdict(self.facts), "l2_kernel": self.l2_kernel,
                "restore_helper_address": self.restore_helper_address}

    @classmethod
    def from_meta(cls, meta: JsonObject) -> SavedChain | None:
        """None: an L1-alone snapshot (no chain recorded); BadSnapshot: a record that is not
        the rig's (the cache is read as a stranger's)."""
        if "chain" not in meta:
            return None
        try:
            saved = cls(ChainFacts(**meta["chain"]), meta.get("l2_kernel", ""), meta.get("restore_helper_address", ""))
            L2Plan.of_saved(saved.facts)
        except (TypeError, ValueError) as e:
            raise BadSnapshot(f"its record is not the rig's: {e}") from e
        if not all(isinstance(v, str) for v in (saved.l2_kernel, saved.restore_helper_address, saved.facts.l1_device)):
            raise BadSnapshot("its record is not the rig's: a value of the wrong type")
        return saved


NOT_BOUND = Binding(Bound("", "", False, False, False), "", "", "", "")


def chain_facts(st: ChainStages, has_l2: bool) -> ChainFacts:
    """result.json's `chain`, from the stages' results ("" or None where a stage did not run)."""
    bind, b = st.binding or NOT_BOUND, (st.binding or NOT_BOUND).bound
    plan, tables = st.l2_plan, st.tables
    return ChainFacts(
        l1_started=st.l1.how if st.l1 else "", l1_snapshot=st.l1.snapshot if st.l1 else "",
        l1_restore_helper=st.l1.restore_helper if st.l1 else "",
        l1_device=b.device, iommu_group=b.group, l1_nointxmask=b.nointxmask, l1_disintx_writable=b.disintx_writable,
        l1_irq_count_at_bind=b.irq_count, l1_kvm_module=bind.kvm_module, l1_lspci=bind.lspci,
        l1_modules=bind.modules, l1_qemu=bind.l1_qemu,
        l2_accel=plan.accel if plan else "", l2_accel_reason=plan.accel_reason if plan else "",
        l2_command=list(plan.command) if plan else [], l2_boot_failures=list(st.l2_boot_failures),
        l2_started=st.l2.how if st.l2 else "", l2_kernel=st.l2.kernel if st.l2 else "",
        l2_snapshot=st.chain_snapshot if has_l2 else "", bound_snapshot="" if has_l2 else st.chain_snapshot,
        consumer_device=st.consumer.device if st.consumer else "", consumer_tty=st.consumer.tty if st.consumer else "",
        consumer_irq=st.consumer.irq if st.consumer else "",
        l1_interrupts_at_end=tables.l1 if tables else "", l2_interrupts_at_end=tables.l2 if tables else "")

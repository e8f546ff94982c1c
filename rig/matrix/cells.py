"""The verdict matrix's cells: every cell the rig can run and its expected verdict,
written down once (EXPECTED, with the reason). The e2e tests and `rig matrix`
(rig.matrix.runner) both read this table.

A cell is (machine, interrupt controller, L1 vfio, device, consumer, scenario); the axes
come from the machine profiles (rig.core.targets): a new machine brings its cells. The
scenarios beyond the flow (rig.core.kinds.Scenario) run in fast mode only and are picked
with `--scenarios`; their ids end in the scenario. L1's vfio is
Debian's (fixed), Debian's rebuilt without the fix (unfixed), or the user's own kernel
(own: every cell of both arches runs it, and each is expected to PASS).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from rig.core import spec_json
from rig.core.errors import UserError
from rig.core.kinds import AccelChoice, Consumer, DeviceKind, InterruptController, L1Vfio, Outcome, Scenario
from rig.core.spec import DriveSpec, KernelUnderTestSpec, MatrixSpec, RunSpec
from rig.core.targets import MACHINES, MachineProfile, machine

VFIO = tuple(L1Vfio)
OWN = "own"
# The matrix's consumer axis: the consumer and, for L2, its accelerator (TCG inside TCG:
# slow), spelled as cell ids show them.
CONSUMERS = (f"{Consumer.L2}-{AccelChoice.KVM}", f"{Consumer.L2}-{AccelChoice.TCG}", Consumer.USERSPACE.value)


@dataclass(frozen=True)
class Expectation:
    machine: str       # a machine's name; "*" matches every one
    ic: str
    vfio: str          # "*" matches both
    verdict: Outcome
    reason: str
    scenario: str = Scenario.FLOW    # "*" matches every one

    def matches(self, cell: Cell) -> bool:
        return self.machine in ("*", cell.machine) and self.ic in ("*", cell.ic) and \
            self.vfio in ("*", cell.vfio) and self.scenario in ("*", cell.scenario)


# The one table of expected verdicts (docs/mechanism.md, docs/scenarios.md); the first row
# that matches a cell is its expectation. The device and the consumer do not change them:
# every device takes vfio's non-2.3 INTx path, and every consumer unmasks the same way; what
# differs is L0's interrupt controller, whether L1's vfio has the fix, and the scenario.
XIVE_LOSES_AT_PQ_00 = ("QEMU's XIVE re-sends an asserted LSI only at its EOI (xive_source_esb_eoi), not when "
                       "Linux sets its ESB to PQ=00 (xive_do_source_set_mask, xive_irq_startup)")
IOAPIC_XICS_RESEND = ("the IO-APIC and XICS re-deliver a level line still asserted when it is unmasked or its "
                      "IRQ started, and nothing for a line that dropped while masked")
SCENARIO_EXPECTED = (
    # What QEMU's XIVE does to a masked LSI holds for every kernel, the user's too.
    Expectation("*", "xive", "*", Outcome.STALL,
                "the user's mask masks the source at XIVE (PQ=01: at once with the fix, at its first delivery "
                f"without); the line asserts, the unmask sets PQ=00 and {XIVE_LOSES_AT_PQ_00}: lost",
                Scenario.MASKED_PENDING),
    Expectation("*", "xics", "*", Outcome.PASS, IOAPIC_XICS_RESEND, Scenario.MASKED_PENDING),
    Expectation("*", "ioapic", "*", Outcome.PASS, IOAPIC_XICS_RESEND, Scenario.MASKED_PENDING),
    Expectation("*", "xive", L1Vfio.UNFIXED, Outcome.STALL,
                "the mask and unmask go through (nothing is pending at the unmask), then the flow after "
                "it stalls as the flow does without the fix", Scenario.DEASSERT_WHILE_MASKED),
    Expectation("*", "xive", L1Vfio.FIXED, Outcome.PASS,
                "nothing is pending at the unmask, so PQ=00 loses nothing; the flow after it runs as "
                "the fix makes it", Scenario.DEASSERT_WHILE_MASKED),
    Expectation("*", "xive", OWN, Outcome.PASS,
                "the contract for a user's kernel, as with the fix", Scenario.DEASSERT_WHILE_MASKED),
    Expectation("*", "xics", "*", Outcome.PASS, IOAPIC_XICS_RESEND, Scenario.DEASSERT_WHILE_MASKED),
    Expectation("*", "ioapic", "*", Outcome.PASS, IOAPIC_XICS_RESEND, Scenario.DEASSERT_WHILE_MASKED),
    Expectation("pseries", "xive", "*", Outcome.STALL,
                "pci-serial has no reset method, so vfio's release and open leave its line asserted; the new "
                f"request_irq() starts the source at PQ=00 and {XIVE_LOSES_AT_PQ_00}: the pending interrupt "
                "is lost", Scenario.REOPEN),
    Expectation("powernv", "xive", L1Vfio.UNFIXED, Outcome.STALL,
                "vfio resets the virtio console at release and open (pci_try_reset_function), so nothing is "
                "pending at request_irq(); the flow after it stalls as the flow does without the fix",
                Scenario.REOPEN),
    *(Expectation("powernv", "xive", vfio, Outcome.PASS,
                  "vfio resets the virtio console at release and open (pci_try_reset_function), so nothing is "
                  "pending at request_irq() to lose; the flow after it runs as the fix makes it", Scenario.REOPEN)
      for vfio in (L1Vfio.FIXED, OWN)),
    Expectation("*", "xics", "*", Outcome.PASS, IOAPIC_XICS_RESEND, Scenario.REOPEN),
    Expectation("*", "ioapic", "*", Outcome.PASS, IOAPIC_XICS_RESEND, Scenario.REOPEN),
)
FLOW_EXPECTED = (
    # First: it overrides every row below for a user's kernel.
    Expectation("*", "*", OWN, Outcome.PASS,
                "the contract for a user's kernel: no stall anywhere; a STALL is a bug in that kernel "
                "(or a controller it does not handle), whatever its version says"),
    Expectation("pseries", "xive", L1Vfio.UNFIXED, Outcome.STALL,
                "lazy disable_irq_nosync() never masks at XIVE; the source stays pending without "
                "EOI and every later assertion is swallowed: one interrupt, then none"),
    Expectation("pseries", "xive", L1Vfio.FIXED, Outcome.PASS,
                "IRQ_DISABLE_UNLAZY masks the source at XIVE; the unmask and EOI let the next one in"),
    Expectation("powernv", "xive", L1Vfio.UNFIXED, Outcome.STALL,
                "the reporter's platform: XIVE driven natively, the same lazy disable; Linux's "
                "xive_irq_eoi() skips the EOI of the disabled IRQ and the PHB4's source stays pending"),
    Expectation("powernv", "xive", L1Vfio.FIXED, Outcome.PASS,
                "IRQ_DISABLE_UNLAZY masks the PHB4's source through its ESB page; unmask and EOI let the "
                "next one in"),
    Expectation("pseries", "xics", "*", Outcome.PASS,
                "XICS re-sends a still-asserted LSI on unmask and on EOI: no stall, fix or not"),
    Expectation("q35", "ioapic", "*", Outcome.PASS,
                "the IO-APIC re-delivers a still-asserted level interrupt on EOI and unmask"),
)
EXPECTED = FLOW_EXPECTED + SCENARIO_EXPECTED


@dataclass(frozen=True)
class OwnKernel:
    """The user's kernel for one arch, as `rig run` takes it (built by rig.kernel.build)."""

    kernel: str
    modules: str | None = None


@dataclass(frozen=True)
class Cell:
    arch: str
    machine: str
    ic: InterruptController
    vfio: str                 # an L1Vfio, or OWN (the user's kernel)
    device: DeviceKind
    consumer: str             # one of CONSUMERS: the consumer and, for L2, its accelerator
    kernel: OwnKernel | None = None     # vfio "own": the kernel every run of the cell boots
    tree: str = ""            # vfio "own" with several trees (an A/B): which tree's kernel
    scenario: Scenario = Scenario.FLOW

    @property
    def machine_profile(self) -> MachineProfile:
        return machine(self.arch, self.machine)

    @property
    def variant(self) -> str:
        """The L1 vfio axis as the id spells it: fixed, unfixed, own, or own-<tree>."""
        return f"{self.vfio}-{self.tree}" if self.tree else self.vfio

    @property
    def id(self) -> str:
        return f"{self.machine_profile.tag}-{self.ic}-{self.variant}-{self.device}-{self.consumer}{self._scenario}"

    @property
    def legacy_id(self) -> str:
        """The id as it was spelled before every machine was named (pseries' and q35's
        cells without their machine): `--cells` patterns may still use it."""
        return f"{self.machine_profile.legacy_tag}-{self.ic}-{self.variant}-{self.device}-{self.consumer}" \
               f"{self._scenario}"

    @property
    def without_tree(self) -> str:
        """The id the same cell of every tree shares (an A/B's rows)."""
        return f"{self.machine_profile.tag}-{self.ic}-{self.vfio}-{self.device}-{self.consumer}{self._scenario}"

    @property
    def _scenario(self) -> str:
        """The flow's cells keep the ids they always had; the other scenarios' end in it."""
        return "" if self.scenario == Scenario.FLOW else f"-{self.scenario}"

    def expectation(self) -> Expectation:
        return next(e for e in EXPECTED if e.matches(self))

    def unavailable(self) -> str | None:
        """Why this cell cannot run with the stock parts, or None."""
        return self.machine_profile.matrix_skips.get(DeviceKind(self.device))

    @property
    def slow(self) -> bool:
        return self.consumer == "l2-tcg"   # TCG inside TCG: minutes to boot L2

    def spec(self, drive: DriveSpec) -> RunSpec:
        """The cell as a run: validated like any `rig run`."""
        userspace = self.consumer == Consumer.USERSPACE
        own = KernelUnderTestSpec(Path(self.kernel.kernel), Path(self.kernel.modules) if self.kernel.modules
                                  else None) if self.kernel else KernelUnderTestSpec()
        return RunSpec(arch=self.arch, machine=self.machine, ic=self.ic, device=self.device,
                       l1_vfio=L1Vfio.FIXED if self.vfio == OWN else L1Vfio(self.vfio),
                       consumer=Consumer.USERSPACE if userspace else Consumer.L2,
                       l2_accel=AccelChoice.AUTO if userspace else AccelChoice(self.consumer.removeprefix("l2-")),
                       scenario=self.scenario, drive=drive, kernel=own).validate()

    def run_args(self, drive: DriveSpec) -> list[str]:
        """`rig run`'s arguments for one run of the cell (rig.core.spec_json.to_argv)."""
        s = self.spec(drive)
        files = {role: path for role, path in (("kernel", s.kernel.kernel), ("modules", s.kernel.modules)) if path}
        return ["run", *spec_json.to_argv(s, files)]


def all_cells(own: Mapping[str, OwnKernel] | None = None, trees: tuple[str, ...] = ()) -> list[Cell]:
    """Every cell of every machine; with own (the user's kernel per arch, possibly not built
    yet), the cells that run it instead of Debian's two variants; with several trees, those
    cells once per tree (named by `trees`, the trees' labels)."""
    variants = (OWN,) if own is not None else VFIO
    return [Cell(m.arch, m.name, ic, v, d, c, own.get(m.arch) if own is not None else None, tree, sc)
            for tree in (trees if own is not None and len(trees) > 1 else ("",))
            for m in MACHINES.values() for ic in m.interrupt_controllers for v in variants
            for d in m.matrix_devices for c in CONSUMERS
            for sc in (Scenario if c == Consumer.USERSPACE else (Scenario.FLOW,))]


def tree_labels(trees: list[Path]) -> tuple[str, ...]:
    """How cell ids name each tree of an A/B: its directory's name (letters, digits, '.',
    '_' kept), A, B, ... where two would read the same."""
    names = [re.sub(r"[^A-Za-z0-9._]+", "_", t.resolve().name) or "tree" for t in trees]
    if len(set(names)) < len(names):
        names = [chr(ord("A") + i) for i in range(len(trees))]
    return tuple(names)


def select(cells: list[Cell], spec: MatrixSpec) -> list[Cell]:
    """Runnable cells, without the slow ones and the scenarios beyond the flow unless asked,
    only those matching one of the glob patterns if given, then this shard's share. Shards split the sorted cell ids
    round-robin: deterministic on every runner. A selection that runs nothing is bad
    input: a nightly misconfigured that way would otherwise be green for ever."""
    chosen = sorted((c for c in cells if not c.unavailable() and (spec.slow or not c.slow)
                     and (spec.scenarios or c.scenario == Scenario.FLOW)
                     and matches(c, spec.cells)), key=lambda c: c.id)
    if spec.cells and not chosen:
        hint = " (scenario cells run with --scenarios)" if any(
            matches(c, spec.cells) and c.scenario != Scenario.FLOW for c in cells) else ""
        raise UserError(f"--cells {','.join(spec.cells)}: no runnable cell matches{hint}; "
                        "`rig matrix --list` shows them")
    if spec.shard:
        k, n = spec.shard
        chosen = chosen[k - 1::n]
        if not chosen:
            raise UserError(f"--shard {k}/{n}: this shard has no cell (there are fewer cells than "
                            "shards); use fewer shards")
    return chosen


def matches(cell: Cell, patterns: tuple[str, ...]) -> bool:
    return not patterns or any(fnmatch.fnmatchcase(cell.id, p) or fnmatch.fnmatchcase(cell.legacy_id, p)
                               for p in patterns)

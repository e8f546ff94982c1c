"""The verdict matrix's cells: every cell the rig can run, each with its expected verdict
(rig.matrix.expected). The e2e tests and `rig matrix` (rig.matrix.runner) both read them.

A cell is (machine, interrupt controller, L1 vfio, device, consumer, scenario); the axes
come from the machine profiles (rig.core.targets): a new machine brings its cells. The
scenarios beyond the flow (rig.core.kinds.Scenario) run in fast mode only and are picked
with `--scenarios`; their ids end in the scenario. L1's vfio is
Debian's (fixed), Debian's rebuilt without the fix (unfixed), or the user's own kernel
(own: every cell of both arches runs it, and each flow cell is expected to PASS).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from rig.core import spec_json
from rig.core.errors import UserError
from rig.core.kinds import AccelChoice, Consumer, DeviceKind, InterruptController, L1Vfio, Scenario
from rig.core.spec import DriveSpec, KernelUnderTestSpec, MatrixSpec, RunSpec, scenario_problem
from rig.core.targets import MACHINES, MachineProfile, machine
from rig.matrix.expected import EXPECTED, OWN, Expectation

VFIO = tuple(L1Vfio)

# The matrix's consumer axis: the consumer and, for L2, its accelerator (TCG inside TCG:
# slow), spelled as cell ids show them.
CONSUMERS = (f"{Consumer.L2}-{AccelChoice.KVM}", f"{Consumer.L2}-{AccelChoice.TCG}", Consumer.USERSPACE.value)


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
    def intx_path(self) -> str:
        """vfio-pci's INTx path for the device: the 2.3 one masks in the device."""
        return "2.3" if self.device in (DeviceKind.PCI_SERIAL_2_3, DeviceKind.VIRTIO_SERIAL_2_3) else "non-2.3"

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
        return self.machine_profile.matrix_skips.get(DeviceKind(self.device)) or \
            scenario_problem(self.scenario, self.device, self.machine_profile)

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
            for d in m.matrix_devices + m.scenario_devices for c in CONSUMERS
            for sc in scenarios_of(m, d, c)]


def scenarios_of(m: MachineProfile, device: DeviceKind, consumer: str) -> tuple[Scenario, ...]:
    """The scenarios a device's cells run: the flow in every consumer, l2-reboot with L2,
    the others in fast mode; a scenario device (vfio's 2.3 path) only the fast-mode others."""
    if consumer != Consumer.USERSPACE:
        return () if device in m.scenario_devices else (Scenario.FLOW, Scenario.L2_REBOOT)
    return tuple(s for s in Scenario if s != Scenario.L2_REBOOT
                 and not (s == Scenario.FLOW and device in m.scenario_devices))


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

"""The verdict matrix's cells: every cell the rig can run and its expected verdict,
written down once (EXPECTED, with the reason). The e2e tests and `rig matrix`
(rig.matrix.runner) both read this table.

A cell is (arch, interrupt controller, L1 vfio, device, consumer). L1's vfio is Debian's
(fixed), Debian's rebuilt without the fix (unfixed), or the user's own kernel (own: every
cell of both arches runs it, and each is expected to PASS).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from rig.chain.verdict import PASS, STALL
from rig.core.errors import UserError
from rig.core.spec import DriveSpec, KernelUnderTestSpec, MatrixSpec, RunSpec

ARCH_ICS = {"ppc64": ("xive", "xics"), "x86_64": ("ioapic",)}
VFIO = ("fixed", "unfixed")
DEVICES = ("pci-serial", "legacy")
CONSUMERS = ("l2-kvm", "l2-tcg", "userspace")


@dataclass(frozen=True)
class Expectation:
    arch: str
    ic: str
    vfio: str          # "*" matches both
    verdict: str
    reason: str

    def matches(self, cell: Cell) -> bool:
        return self.arch in ("*", cell.arch) and self.ic in ("*", cell.ic) and self.vfio in ("*", cell.vfio)


# The one table of expected verdicts (DESIGN.md sections 1 and 2). The device and the consumer
# do not change them: both devices take vfio's non-2.3 INTx path, and every consumer unmasks
# the same way; what differs is L0's interrupt controller and whether L1's vfio has the fix.
EXPECTED = (
    # First: it overrides every row below for a user's kernel.
    Expectation("*", "*", "own", PASS,
                "the contract for a user's kernel: no stall anywhere; a STALL is a bug in that kernel "
                "(or a controller it does not handle), whatever its version says"),
    Expectation("ppc64", "xive", "unfixed", STALL,
                "lazy disable_irq_nosync() never masks at XIVE; the source stays pending without "
                "EOI and every later assertion is swallowed: one interrupt, then none"),
    Expectation("ppc64", "xive", "fixed", PASS,
                "IRQ_DISABLE_UNLAZY masks the source at XIVE; the unmask and EOI let the next one in"),
    Expectation("ppc64", "xics", "*", PASS,
                "XICS re-sends a still-asserted LSI on unmask and on EOI: no stall, fix or not"),
    Expectation("x86_64", "ioapic", "*", PASS,
                "the IO-APIC re-delivers a still-asserted level interrupt on EOI and unmask"),
)


@dataclass(frozen=True)
class OwnKernel:
    """The user's kernel for one arch, as `rig run` takes it (built by rig.kernel.build)."""

    kernel: str
    modules: str | None = None


@dataclass(frozen=True)
class Cell:
    arch: str
    ic: str
    vfio: str
    device: str
    consumer: str
    kernel: OwnKernel | None = None     # vfio "own": the kernel every run of the cell boots

    @property
    def id(self) -> str:
        return f"{self.arch}-{self.ic}-{self.vfio}-{self.device}-{self.consumer}"

    def expectation(self) -> Expectation:
        return next(e for e in EXPECTED if e.matches(self))

    def unavailable(self) -> str | None:
        """Why this cell cannot run with the stock parts, or None."""
        if self.device == "legacy" and self.arch == "ppc64":
            return ("vfio-user on pseries: QEMU 11.1.3 aborts at machine reset, and Linux on "
                    "pseries never probes INTx masking (docs/findings/)")
        return None

    @property
    def slow(self) -> bool:
        return self.consumer == "l2-tcg"   # TCG inside TCG: minutes to boot L2

    def spec(self, drive: DriveSpec) -> RunSpec:
        """The cell as a run: validated like any `rig run`."""
        userspace = self.consumer == "userspace"
        own = KernelUnderTestSpec(Path(self.kernel.kernel), Path(self.kernel.modules) if self.kernel.modules
                                  else None) if self.kernel else KernelUnderTestSpec()
        return RunSpec(arch=self.arch, ic=self.ic, device=self.device,
                       l1_vfio="fixed" if self.vfio == "own" else self.vfio,
                       consumer="userspace" if userspace else "l2",
                       l2_accel="auto" if userspace else self.consumer.removeprefix("l2-"),
                       drive=drive, kernel=own).validate()

    def run_args(self, drive: DriveSpec) -> list[str]:
        """`rig run`'s arguments for one run of the cell."""
        s = self.spec(drive)
        if s.kernel.kernel:
            l1 = ["--kernel", str(s.kernel.kernel)] + (["--modules", str(s.kernel.modules)] if s.kernel.modules
                                                       else [])
        else:
            l1 = ["--l1-vfio", s.l1_vfio]
        args = ["run", "--arch", s.arch, *l1, "--device", str(s.device),
                "--duration", f"{drive.duration:g}", "--stall-window", f"{drive.stall_window:g}",
                "--pass-after", str(drive.pass_after)]
        if len(s.profile.interrupt_controllers) > 1:
            args += ["--ic", s.interrupt_controller]
        if s.consumer == "userspace":
            return args + ["--consumer", "userspace"]
        return args + ["--l2-accel", s.l2_accel]


def all_cells(own: Mapping[str, OwnKernel] | None = None) -> list[Cell]:
    """Every cell; with own (the user's kernel per arch, possibly not built yet), the cells
    that run it instead of Debian's two variants."""
    variants = ("own",) if own is not None else VFIO
    return [Cell(a, ic, v, d, c, own.get(a) if own is not None else None) for a, ics in ARCH_ICS.items()
            for ic in ics for v in variants for d in DEVICES for c in CONSUMERS]


def select(cells: list[Cell], spec: MatrixSpec) -> list[Cell]:
    """Runnable cells, without the slow ones unless asked, only those matching one of the
    glob patterns if given, then this shard's share. Shards split the sorted cell ids
    round-robin: deterministic on every runner. A selection that runs nothing is bad
    input: a nightly misconfigured that way would otherwise be green for ever."""
    chosen = sorted((c for c in cells if not c.unavailable() and (spec.slow or not c.slow)
                     and matches(c, spec.cells)), key=lambda c: c.id)
    if spec.cells and not chosen:
        raise UserError(f"--cells {','.join(spec.cells)}: no runnable cell matches; "
                        "`rig matrix --list` shows them")
    if spec.shard:
        k, n = spec.shard
        chosen = chosen[k - 1::n]
        if not chosen:
            raise UserError(f"--shard {k}/{n}: this shard has no cell (there are fewer cells than "
                            "shards); use fewer shards")
    return chosen


def matches(cell: Cell, patterns: tuple[str, ...]) -> bool:
    return not patterns or any(fnmatch.fnmatchcase(cell.id, p) for p in patterns)

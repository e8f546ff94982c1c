"""Results as KTAP (the kernel's Test Anything Protocol, version 1), for kernel CI systems
(KernelCI, LKFT/tuxrun, kselftest runners): `results.ktap` for a run, one document for a
whole matrix (a test per cell, its repeats as subtests). A scenario's steps are the run's
subtests, each ok when it held (a STALL cell's lost step is `not ok` in a run that is `ok`).

A STALL is `not ok` (the kernel under test stalled the device); an ERROR is `not ok` with
the ERROR directive and its cause, so a CI system can tell "the kernel is broken" from "the
rig could not judge". The verdict's reason and the interrupt-path explanation are
diagnostic lines before the result line, as the format asks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rig.chain.verdict import describe_stop
from rig.core.kinds import Outcome
from rig.reports.result import RunResult
from rig.reports.text import one_line

VERSION = "KTAP version 1"
INDENT = "  "          # one nesting level
KTAP_NAME = "results.ktap"


def clean(text: str) -> str:
    """One line of printable characters, and no '#' (it would start the directive field)."""
    return one_line(text.replace("#", "No."))


@dataclass
class Case:
    """One test: its name, whether it passed, its diagnostics, and its subtests."""

    name: str
    ok: bool
    diagnostics: list[str] = field(default_factory=list)
    error: str | None = None            # the ERROR directive's cause
    subtests: list[Case] = field(default_factory=list)

    def lines(self, number: int) -> list[str]:
        out = document(self.subtests, indent=INDENT) if self.subtests else []
        out += [f"# {clean(d)}" for d in self.diagnostics if d.strip()]
        result = f"{'ok' if self.ok else 'not ok'} {number} {clean(self.name)}"
        if self.error is not None:
            result += f" # {Outcome.ERROR} {clean(self.error)}"
        return out + [result]


def document(cases: list[Case], indent: str = "") -> list[str]:
    lines = [VERSION, f"1..{len(cases)}"]
    for i, case in enumerate(cases, 1):
        lines += case.lines(i)
    return [indent + line for line in lines]


def run_case(r: RunResult, name: str | None = None, expected: str = Outcome.PASS) -> Case:
    """A run as a test: ok when its verdict is the expected one (a kernel's contract is
    PASS; the matrix's STALL cells expect a STALL)."""
    v = r.verdict
    diags = [f"{v.outcome}: {v.reason}"]
    if r.samples:
        diags.append(describe_stop(v))
    if r.interrupt_path and r.interrupt_path.stopped_layer:
        diags.append(f"interrupt path: {r.interrupt_path.explanation}")
    if r.interrupt_path and r.interrupt_path.deliveries_per_serviced is not None:
        diags.append(f"L0 deliveries per serviced interrupt: {r.interrupt_path.deliveries_per_serviced:g} "
                     f"({r.interrupt_path.deliveries} deliveries)")
    if r.facts.l1:
        fix = {True: "has", False: "lacks", None: "unknown whether it has"}[r.facts.l1.vfio_intx_fix]
        diags.append(f"L1 kernel {r.facts.l1.kernel}: vfio {fix} the INTx fix")
    if r.facts.l0:
        diags.append(f"L0: {r.facts.l0.qemu}, L1 under {r.facts.l0.accel.upper()}")
    if r.chain and r.chain.l2_accel:
        diags.append(f"L2 under {r.chain.l2_accel.upper()} ({r.chain.l2_accel_reason})")
    diags += [f"note: {n}" for n in v.notes]
    error = v.reason if v.outcome == Outcome.ERROR else None
    steps = [Case(c.step, c.result == "ok", [f"{c.result}: {c.what}"] if c.what else []) for c in v.checks]
    return Case(name or r.name, v.outcome == expected and error is None, diags, error, steps)


def write_run(out: Path, r: RunResult) -> Path:
    p = out / KTAP_NAME
    p.write_text("\n".join(document([run_case(r)])) + "\n")
    return p

"""A matrix run counted as a soak counts it: runs, wrong verdicts (a PASS or STALL other than
the cell's expected one), and ERRORs apart, each with its cause (tally.json, one line on the
terminal). A wrong verdict is what a user would act on; an ERROR is the machinery, which
`git bisect run` skips."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from rig.core.kinds import Outcome
from rig.matrix.summary import CellSummary

TALLY = "tally.json"


@dataclass(frozen=True)
class WrongRun:
    """A run whose verdict was not its cell's expectation (its directory: held or kept)."""

    verdict: str
    reason: str
    out: str


@dataclass(frozen=True)
class ErrorRun:
    """A run the machinery failed (an ERROR, with its cause)."""

    reason: str
    out: str


@dataclass(frozen=True)
class CellTally:
    id: str
    expected: str
    runs: int
    wrong: int
    errors: int
    median_s: float | None
    wrong_runs: list[WrongRun]
    error_runs: list[ErrorRun]


@dataclass(frozen=True)
class Tally:
    runs: int
    wrong: int
    errors: int
    cells: list[CellTally]


def tally(results: list[CellSummary]) -> Tally:
    """Totals and per-cell counts from the matrix's results (rig.matrix.summary)."""
    cells = []
    for r in results:
        wrong = [WrongRun(d.verdict, d.reason, d.out) for d in r.disagreements if d.verdict != Outcome.ERROR]
        errors = [ErrorRun(d.reason, d.out) for d in r.disagreements if d.verdict == Outcome.ERROR]
        cells.append(CellTally(r.id, r.expected, len(r.runs), len(wrong), len(errors),
                               r.seconds.median if r.seconds else None, wrong, errors))
    return Tally(sum(c.runs for c in cells), sum(c.wrong for c in cells), sum(c.errors for c in cells), cells)


def write_tally(out: Path, results: list[CellSummary]) -> Tally:
    t = tally(results)
    (out / TALLY).write_text(json.dumps(asdict(t), indent=1) + "\n")
    return t


def tally_line(t: Tally) -> str:
    causes = sorted({e.reason[:120] for c in t.cells for e in c.error_runs})
    line = f"{t.runs} runs: {t.wrong} wrong verdict(s), {t.errors} ERROR(s)"
    return line + "".join(f"\n  ERROR: {c}" for c in causes)

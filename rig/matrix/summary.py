"""`rig matrix`'s report: per cell, the verdicts against the expectation, agreement,
seconds, every disagreement and every recovered L2 boot with its logs (matrix.json,
junit.xml, the terminal table)."""

from __future__ import annotations

import dataclasses
import json
import statistics
from dataclasses import dataclass
from pathlib import Path

from rig.core.json_object import JsonObject
from rig.core.kinds import Outcome
from rig.matrix.cells import Cell
from rig.reports.junit import JunitCase, write_junit
from rig.reports.ktap import Case, document


@dataclass
class RunOutcome:
    """One run of a cell, as the matrix reports it."""

    verdict: str
    seconds: float
    out: str
    reason: str
    l2_boot_failures: int = 0   # L2 boots that failed (then restarted) before the drive
    explanation: str = ""       # where the interrupt path stopped, when it did
    vfio_intx_fix: bool | None = None   # whether L1's vfio has the fix, read from its binary
    deliveries_per_serviced: float | None = None   # L0's controller, per serviced interrupt


def fix_label(fix: bool | None) -> str:
    return {True: "has fix", False: "no fix", None: "unknown"}[fix]


@dataclass(frozen=True)
class Seconds:
    median: float
    min: float
    max: float


@dataclass
class CellSummary:
    """A cell's runs against its expectation: one entry of matrix.json."""

    cell: Cell
    runs: list[RunOutcome]
    jobs: int = 0               # runs at a time in the matrix that made it

    @property
    def id(self) -> str:
        return self.cell.id

    @property
    def expected(self) -> str:
        return self.cell.expectation().verdict

    @property
    def why(self) -> str:
        return self.cell.expectation().reason

    @property
    def verdicts(self) -> list[str]:
        return [r.verdict for r in self.runs]

    @property
    def agreement(self) -> float | None:
        agree = [r for r in self.runs if r.verdict == self.expected]
        return round(len(agree) / len(self.runs), 3) if self.runs else None

    @property
    def seconds(self) -> Seconds | None:
        secs = [r.seconds for r in self.runs]
        return Seconds(round(statistics.median(secs), 1), round(min(secs), 1), round(max(secs), 1)) \
            if secs else None

    @property
    def disagreements(self) -> list[RunOutcome]:
        return [r for r in self.runs if r.verdict != self.expected]

    @property
    def l2_restarted(self) -> list[RunOutcome]:
        """Machinery the rig recovered from before a drive: shown, never hidden."""
        return [r for r in self.runs if r.l2_boot_failures]

    def to_json(self) -> JsonObject:
        secs = self.seconds
        return {"cell": dataclasses.asdict(self.cell), "id": self.id, "expected": self.expected,
                "why": self.why, "verdicts": self.verdicts,
                # beside each verdict: what the rig read in that run's L1 binary
                "vfio_intx_fix": [r.vfio_intx_fix for r in self.runs],
                # how often L0's controller delivered the line per interrupt serviced (2: lazy disable's extra one)
                "deliveries_per_serviced": [r.deliveries_per_serviced for r in self.runs],
                "agreement": self.agreement, "seconds": dataclasses.asdict(secs) if secs else None,
                "disagreements": [dataclasses.asdict(r) for r in self.disagreements],
                "l2_restarted": [dataclasses.asdict(r) for r in self.l2_restarted], "jobs": self.jobs}


def write_matrix_junit(path: Path, results: list[CellSummary]) -> None:
    """A case per run of each cell; one that disagrees with the expectation fails."""
    cases = []
    for res in results:
        for i, v in enumerate(res.verdicts):
            name = res.id + (f"#{i + 1}" if len(res.runs) > 1 else "")
            failure = None if v == res.expected else (f"expected {res.expected}, got {v}", res.why)
            cases.append(JunitCase(name, failure=failure))
    write_junit(path, "intx-rig-matrix", "intx-rig.matrix", cases)


def table(results: list[CellSummary]) -> str:
    lines = [f"{'cell':52} {'expected':8} {'got':16} {'agree':>6} {'median s':>9} {'L0/irq':>6}  L1 vfio"]
    for r in results:
        got = ",".join(sorted(set(r.verdicts)))
        fix = ",".join(sorted({fix_label(x.vfio_intx_fix) for x in r.runs}))
        per = [x.deliveries_per_serviced for x in r.runs if x.deliveries_per_serviced is not None]
        deliv = f"{statistics.median(per):.2f}" if per else "-"
        median = r.seconds.median if r.seconds else 0.0
        lines.append(f"{r.id:52} {r.expected:8} {got:16} {(r.agreement or 0) * 100:5.0f}% "
                     f"{median:9.1f} {deliv:>6}  {fix}")
    return "\n".join(lines)


def side_by_side(results: list[CellSummary], trees: tuple[str, ...]) -> str:
    """An A/B: each cell once, its verdicts with each tree's kernel in a column, and the
    cells where the trees' verdicts differ marked: what a patch changed."""
    by_cell: dict[str, dict[str, CellSummary]] = {}
    for r in results:
        by_cell.setdefault(r.cell.without_tree, {})[r.cell.tree] = r
    width = max([len(k) for k in by_cell] + [4])
    lines = [f"{'cell':{width}} " + " ".join(f"{t[:16]:16}" for t in trees) + "  trees differ"]
    for cell_id, per_tree in sorted(by_cell.items()):
        got = [",".join(sorted(set(per_tree[t].verdicts))) if t in per_tree else "-" for t in trees]
        differ = "DIFFER" if len(set(got)) > 1 else ""
        lines.append(f"{cell_id:{width}} " + " ".join(f"{g:16}" for g in got) + f"  {differ}")
    return "\n".join(lines)


def write_json(out: Path, cells: list[Cell], runs: dict[str, list[RunOutcome | None]],
               jobs: int) -> list[CellSummary]:
    results = [CellSummary(c, [r for r in runs[c.id] if r], jobs) for c in cells if any(runs[c.id])]
    (out / "matrix.json").write_text(json.dumps([r.to_json() for r in results], indent=1))
    return results


def ktap_cases(cells: list[Cell], runs: dict[str, list[RunOutcome | None]]) -> list[Case]:
    """A test per cell that ran, its runs as subtests: a run is ok when its verdict is the
    cell's expected one; an ERROR is not ok with its cause."""
    cases = []
    for cell in cells:
        done = [(n, r) for n, r in enumerate(runs[cell.id], 1) if r]
        if not done:
            continue
        exp = cell.expectation()
        subtests = [Case(f"run{n}", r.verdict == exp.verdict,
                         [f"{r.verdict}: {r.reason}", f"L1 vfio: {fix_label(r.vfio_intx_fix)}",
                          f"interrupt path: {r.explanation}" if r.explanation else "",
                          f"logs in {r.out}"], r.reason if r.verdict == Outcome.ERROR else None)
                    for n, r in done]
        cases.append(Case(cell.id, all(s.ok for s in subtests),
                          [f"expected {exp.verdict}: {exp.reason}"], subtests=subtests))
    return cases


def write_ktap(path: Path, cells: list[Cell], runs: dict[str, list[RunOutcome | None]]) -> None:
    path.write_text("\n".join(document(ktap_cases(cells, runs))) + "\n")

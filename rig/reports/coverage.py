"""Line coverage of vfio-pci's INTx functions (`vfio_intx_*`, `vfio_pci_intx_*` and their
`__` helpers in vfio_pci_intrs.c) from a --coverage kernel's counters: per run
(coverage.json beside result.json) and for a set of runs (a matrix: every line reached by
some run, and the lines none reached).

The counters (.gcda, fetched from L1: rig.chain.gcov) are read against the build's notes
(.gcno, next to each object in the build directory) by the gcov of the compiler that built
the kernel (gcc-12, the cross one for ppc64), in its JSON format.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from rig.chain.gcov import COVERED, OUT_DIR, counters_name
from rig.core import timeouts
from rig.core.errors import InfraError
from rig.core.json_object import JsonObject
from rig.core.targets import TargetProfile

COVERAGE_NAME = "coverage.json"
INTX_FUNCTION = re.compile(r"^(__)?vfio_(pci_)?intx_")


@dataclass(frozen=True)
class FunctionLines:
    """One INTx function: its executable lines and those some run reached."""

    name: str
    lines: tuple[int, ...]
    reached: tuple[int, ...]

    @property
    def missed(self) -> tuple[int, ...]:
        return tuple(n for n in self.lines if n not in self.reached)


def notes_dir(build_dir: Path) -> Path:
    return build_dir / Path(COVERED[0]).parent


def has_notes(build_dir: Path) -> bool:
    """Whether this build directory was built with --coverage (its .gcno files are there)."""
    return all((build_dir / c).with_suffix(".gcno").is_file() for c in COVERED)


def gcov_json(counters: Path, notes: Path, gcov: str) -> JsonObject:
    """gcov's JSON report of one file, from its counters and notes side by side in a scratch
    directory (gcov finds them by name; the build directory is left as it is)."""
    with tempfile.TemporaryDirectory(prefix="rig-gcov-") as d:
        shutil.copy(notes, Path(d) / notes.name)
        shutil.copy(counters, Path(d) / notes.with_suffix(".gcda").name)
        r = subprocess.run([gcov, "--json-format", "--stdout", "--object-directory", d, notes.name],
                           cwd=d, capture_output=True, text=True, timeout=timeouts.GCOV_REPORT_S)
    if r.returncode != 0 or not r.stdout.strip():
        raise InfraError(f"{gcov} could not read {counters.name}: {r.stderr.strip()[-300:]}")
    doc: JsonObject = json.loads(r.stdout.splitlines()[0])
    return doc


def intx_functions(doc: JsonObject, source: str) -> list[FunctionLines]:
    """The INTx functions of `source` in gcov's report: each line by the function gcov says
    it belongs to."""
    name = Path(source).name
    lines: dict[str, list[tuple[int, int]]] = {}
    for f in doc.get("files", []):
        if Path(f.get("file", "")).name != name:
            continue
        for line in f.get("lines", []):
            fn = line.get("function_name", "")
            if INTX_FUNCTION.match(fn):
                lines.setdefault(fn, []).append((line["line_number"], line["count"]))
    return [FunctionLines(fn, tuple(sorted({n for n, _ in ls})), tuple(sorted({n for n, c in ls if c > 0})))
            for fn, ls in sorted(lines.items())]


def gcov_for(profile: TargetProfile) -> str:
    """The gcov of the compiler the rig builds kernels with for this arch."""
    for name in (f"{profile.cross_compile}gcov-12", "gcov-12"):
        if shutil.which(name):
            return name
    raise InfraError(f"no gcov for {profile.name} ({profile.cross_compile}gcov-12): it comes with the compiler "
                     "the rig builds kernels with (`make host`)")


def of_run(out: Path, build_dir: Path, profile: TargetProfile) -> list[FunctionLines]:
    """A run's coverage from the counters it fetched; written to out/coverage.json."""
    functions: list[FunctionLines] = []
    for source in COVERED:
        counters = out / OUT_DIR / counters_name(source)
        doc = gcov_json(counters, (build_dir / source).with_suffix(".gcno"), gcov_for(profile))
        functions += intx_functions(doc, source)
    write(out, functions, [str(out)])
    return functions


def merged(runs: Iterable[list[FunctionLines]]) -> list[FunctionLines]:
    """Every line some run reached, per function."""
    by_name: dict[str, FunctionLines] = {}
    for run in runs:
        for f in run:
            old = by_name.get(f.name)
            lines = tuple(sorted(set(f.lines) | set(old.lines if old else ())))
            reached = tuple(sorted(set(f.reached) | set(old.reached if old else ())))
            by_name[f.name] = FunctionLines(f.name, lines, reached)
    return [by_name[k] for k in sorted(by_name)]


def load(out: Path) -> list[FunctionLines]:
    """A run's coverage.json, as this rig wrote it (a matrix reads its own runs' files)."""
    d = json.loads((out / COVERAGE_NAME).read_text())
    return [FunctionLines(f["name"], tuple(f["lines"]), tuple(f["reached"])) for f in d["functions"]]


def of_runs(out: Path, runs: list[Path]) -> list[FunctionLines]:
    """The suite's coverage: every line some run reached (runs without coverage.json, an
    ERROR before its counters were read, left out), written to out/coverage.json."""
    covered = [r for r in runs if (r / COVERAGE_NAME).is_file()]
    suite = merged(load(r) for r in covered)
    write(out, suite, [str(r) for r in covered])
    return suite


def totals(functions: list[FunctionLines]) -> tuple[int, int]:
    return sum(len(f.reached) for f in functions), sum(len(f.lines) for f in functions)


def describe(functions: list[FunctionLines]) -> str:
    reached, total = totals(functions)
    if not total:
        return "coverage: no INTx function lines in the counters"
    untouched = [f.name for f in functions if not f.reached]
    return (f"coverage: {reached} of {total} lines of vfio_pci_intrs.c's INTx functions reached "
            f"({100 * reached / total:.0f} %)" + (f"; none of {', '.join(untouched)}" if untouched else ""))


def write(out: Path, functions: list[FunctionLines], runs: list[str]) -> Path:
    reached, total = totals(functions)
    p = out / COVERAGE_NAME
    p.write_text(json.dumps({"source": list(COVERED), "reached": reached, "lines": total, "runs": runs,
                             "functions": [{**asdict(f), "missed": list(f.missed)} for f in functions]},
                            indent=1) + "\n")
    return p

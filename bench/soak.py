#!/usr/bin/env python3
"""Soak: how often is the verdict wrong? The control and STALL cells of every machine run many
times, side by side and under load (two and three runs at a time on 2 cores), restored and
booted, and every verdict is counted against its cell's expectation: wrong verdicts (a PASS
or STALL the cell should not give) apart from ERRORs (the machinery, each with its cause).

Each phase is one real `rig matrix --repeat N` (its tally.json: rig.matrix.tally); a run
whose verdict is wrong keeps its chain up for a look (--hold-unexpected). The soak ends
when --runs runs are done or --hours have passed, whichever first, phase by phase in
turn. Prints a markdown table for docs/measurements.md; soak.json has every count.

    .venv/bin/python bench/soak.py --runs 1000 --out results/soak
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FAST, NESTED = "*-userspace", "*-l2-kvm"
# name -> (cells, runs at a time, extra options)
PHASES = {
    "fast-restored-j2": (FAST, 2, []),
    "nested-restored-j2": (NESTED, 2, []),
    "fast-restored-j3": (FAST, 3, []),
    "nested-restored-j3": (NESTED, 3, []),
    "fast-booted-j2": (FAST, 2, ["--no-snapshot"]),
    "nested-booted-j2": (NESTED, 2, ["--no-snapshot"]),
}
HOLD_MINUTES = 15


def run_phase(name: str, repeat: int, out: Path, extra: list[str]) -> dict:
    cells, jobs, options = PHASES[name]
    phase_out = out / f"{name}-{time.strftime('%H%M%S')}"
    cmd = [sys.executable, "-m", "rig", "matrix", "--cells", cells, "--jobs", str(jobs), "--repeat", str(repeat),
           "--hold-unexpected", str(HOLD_MINUTES), "--out", str(phase_out), *options, *extra]
    print(f"[{time.strftime('%H:%M:%S')}] {name}: {' '.join(cmd[1:])}", flush=True)
    t0 = time.monotonic()
    subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=6 * 3600)
    if not (phase_out / "tally.json").is_file():
        raise SystemExit(f"{name}: the matrix ended without its tally (interrupted?); see {phase_out}")
    tally = json.loads((phase_out / "tally.json").read_text())
    tally.update(phase=name, wall_s=round(time.monotonic() - t0, 1), jobs=jobs, out=str(phase_out))
    print(f"  {tally['runs']} runs, {tally['wrong']} wrong, {tally['errors']} ERROR in {tally['wall_s']:.0f} s",
          flush=True)
    return tally


def table(phases: list[dict]) -> str:
    lines = ["| phase | runs at a time | runs | wrong verdicts | ERRORs | wall s | wall s per run |",
             "|---|---|---|---|---|---|---|"]
    for p in phases:
        lines.append(f"| {p['phase']} | {p['jobs']} | {p['runs']} | {p['wrong']} | {p['errors']} | "
                     f"{p['wall_s']:.0f} | {p['wall_s'] / max(1, p['runs']):.1f} |")
    total = {k: sum(p[k] for p in phases) for k in ("runs", "wrong", "errors")}
    lines.append(f"| **all** | | **{total['runs']}** | **{total['wrong']}** | **{total['errors']}** | | |")
    cells: dict[str, dict] = {}
    for p in phases:
        for c in p["cells"]:
            cell = cells.setdefault(c["id"], {"expected": c["expected"], "runs": 0, "wrong": 0, "errors": 0,
                                              "medians": []})
            for k in ("runs", "wrong", "errors"):
                cell[k] += c[k]
            if c["median_s"] is not None:
                cell["medians"].append(c["median_s"])
    lines += ["", "| cell | expected | runs | wrong | ERRORs | median s per run (phases' medians) |",
              "|---|---|---|---|---|---|"]
    for cid, c in sorted(cells.items()):
        med = statistics.median(c["medians"]) if c["medians"] else 0
        lines.append(f"| {cid} | {c['expected']} | {c['runs']} | {c['wrong']} | {c['errors']} | {med:.1f} |")
    causes = [f"- {p['phase']}: {e['reason'][:200]} ({e['out']})" for p in phases for c in p["cells"]
              for e in c["error_runs"]]
    wrong = [f"- {p['phase']}: {c['id']} gave {w['verdict']}: {w['reason'][:200]} ({w['out']})"
             for p in phases for c in p["cells"] for w in c["wrong_runs"]]
    return "\n".join(lines + ["", "Wrong verdicts:", *(wrong or ["- none"]), "", "ERRORs:", *(causes or ["- none"])])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1000, help="stop once this many runs are done")
    ap.add_argument("--hours", type=float, default=12.0, help="or once this long has passed")
    ap.add_argument("--repeat", type=int, default=5, help="runs per cell in one phase")
    ap.add_argument("--phases", default=",".join(PHASES), help="comma-separated, in turn")
    ap.add_argument("--out", default="results/soak")
    ap.add_argument("--kernel-tree", help="run the cells with this tree built by the rig (minimal config)")
    ap.add_argument("--build-dir", help="with --kernel-tree: its build directories (rig matrix --build-dir)")
    args = ap.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    names = args.phases.split(",")
    extra = ["--kernel-tree", args.kernel_tree] if args.kernel_tree else []
    extra += ["--build-dir", args.build_dir] if args.kernel_tree and args.build_dir else []
    deadline = time.monotonic() + args.hours * 3600
    phases: list[dict] = []
    i = 0
    while sum(p["runs"] for p in phases) < args.runs and time.monotonic() < deadline:
        phases.append(run_phase(names[i % len(names)], args.repeat, out, extra))
        i += 1
        (out / "soak.json").write_text(json.dumps({
            "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores, TCG",
            "command": " ".join(sys.argv), "phases": phases}, indent=1))
    print(f"\n{time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, TCG: "
          f"`{' '.join(sys.argv)}`\n")
    print(table(phases))
    return 1 if any(p["wrong"] for p in phases) else 0


if __name__ == "__main__":
    sys.exit(main())

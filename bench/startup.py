#!/usr/bin/env python3
"""Benchmark: what every `rig` command pays before it does anything (Python starting and
importing the CLI: `rig --help`), what a run imports in all (the CLI and the timeline it
draws), and what every run pays after its verdict (drawing timeline.png and .svg of a 60 s
run with its interrupt path), for this checkout and, side by side (alternating), another one
(`--before DIR`: e.g. a worktree of an earlier commit).
Medians of --runs, in seconds, with the date and the machine.

  .venv/bin/python bench/startup.py --before /tmp/rig-before [--runs 9]
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DRAW = """
import sys, tempfile, time
from pathlib import Path
from rig.chain.verdict import Sample
from rig.reports.timeline import write_timeline
from rig.trace.path import InterruptPath, PathEvent
samples = [Sample(t, 25 * t + 1, 25 * t, 25 * t + 2, 25 * t + 1) for t in range(61)]
events = [PathEvent(t / 25, lane, kind) for t in range(1500)
          for lane, kind in (("device", "push"), ("l0_ic", "deliver"), ("consumer", "serviced"))]
path = InterruptPath("xive", events=events, explanation="flowing")
t0 = time.monotonic()
with tempfile.TemporaryDirectory() as d:
    write_timeline(Path(d), samples, "bench: PASS", None, path)
print(time.monotonic() - t0)
"""


def start_seconds(checkout: Path) -> float:
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "rig", "--help"], cwd=checkout, capture_output=True, check=True,
                   timeout=60)
    return time.monotonic() - t0


def run_imports_seconds(checkout: Path) -> float:
    """Python with everything a run imports in all (the CLI, then the timeline to draw)."""
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-c", "import rig.commands.cli, rig.reports.timeline"], cwd=checkout,
                   capture_output=True, check=True, timeout=60)
    return time.monotonic() - t0


def draw_seconds(checkout: Path) -> float:
    r = subprocess.run([sys.executable, "-c", DRAW], cwd=checkout, capture_output=True, text=True, check=True,
                       timeout=120)
    return float(r.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", type=Path, help="another checkout, measured alternately with this one")
    ap.add_argument("--runs", type=int, default=9)
    args = ap.parse_args()
    checkouts = {"this": ROOT} | ({"before": args.before.resolve()} if args.before else {})
    measures = {"start": start_seconds, "run imports": run_imports_seconds, "draw": draw_seconds}
    got: dict[str, dict[str, list[float]]] = {k: {m: [] for m in measures} for k in checkouts}
    for _ in range(args.runs):
        for name, where in checkouts.items():
            for what, measure in measures.items():
                got[name][what].append(measure(where))
    print(f"{datetime.date.today()}, {platform.node()}, {platform.machine()}, medians of {args.runs}")
    for what in measures:
        line = {n: statistics.median(v[what]) for n, v in got.items()}
        ratio = f", this/before {line['this'] / line['before']:.2f}" if "before" in line else ""
        print(f"{what:11} " + ", ".join(f"{n} {s:.3f} s" for n, s in line.items()) + ratio)
    return 0


if __name__ == "__main__":
    sys.exit(main())

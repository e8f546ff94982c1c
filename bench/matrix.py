#!/usr/bin/env python3
"""Benchmark: wall time of `rig matrix` with its defaults (the 20 default cells, as many at a
time as `auto` gives, each cell's default drive), this checkout against --before DIR (another
checkout: the way before), alternating so the machine's noise falls on both; medians of
--runs, the ratio, and every run's agreement with the cells' expectations (a faster matrix
must not change a verdict).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def matrix_once(root: Path, options: list[str]) -> tuple[float, float]:
    """(wall seconds, agreement over all runs) of one `rig matrix` of the checkout at root."""
    with tempfile.TemporaryDirectory(prefix="intx-rig-bench-") as out:
        cmd = [sys.executable, "-m", "rig", "-q", "matrix", *options, "--out", out]
        t0 = time.monotonic()
        subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=7200)
        seconds = time.monotonic() - t0
        results = json.loads((Path(out) / "matrix.json").read_text())
    runs = [v == r["expected"] for r in results for v in r["verdicts"]]
    return seconds, sum(runs) / len(runs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", type=Path, required=True, help="the other checkout (e.g. a worktree of main)")
    ap.add_argument("--runs", type=int, default=2)
    args = ap.parse_args()
    times: dict[str, list[float]] = {"before": [], "now": []}
    agreement: list[float] = []
    for i in range(args.runs):
        for name, root in (("before", args.before.resolve()), ("now", ROOT)):
            seconds, agree = matrix_once(root, [])
            times[name].append(seconds)
            agreement.append(agree)
            print(f"run {i + 1}: {name}: {seconds:.1f} s, agreement {agree * 100:.0f}%", flush=True)
    before, now = statistics.median(times["before"]), statistics.median(times["now"])
    print(f"default matrix: median before {before:.1f} s, now {now:.1f} s, ratio {now / before:.2f}; "
          f"agreement over every run {min(agreement) * 100:.0f}% (lowest)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

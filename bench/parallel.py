#!/usr/bin/env python3
"""Benchmark: wall time of `rig matrix` over a set of cells, one run at a time (--jobs 1)
against side by side (--jobs N, default what `auto` gives this machine), medians of --runs,
alternating the two so the machine's noise falls on both. Also reports every verdict's
agreement, since running side by side must not change any.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import matrix  # noqa: E402  (bench/matrix.py, beside this file)

from rig.host.capacity import parallel_chains  # noqa: E402


def matrix_once(cells: str, jobs: int, args) -> tuple[float, float]:
    """(wall seconds, agreement over all runs) of one `rig matrix`."""
    return matrix.matrix_once(ROOT, ["--cells", cells, "--jobs", str(jobs), "--pass-after", str(args.pass_after)])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", default="*-userspace", help="cell globs (rig matrix --cells)")
    ap.add_argument("--jobs", type=int, default=parallel_chains())
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--pass-after", type=int, default=100)
    args = ap.parse_args()
    times: dict[int, list[float]] = {1: [], args.jobs: []}
    agreement: list[float] = []
    for i in range(args.runs):
        for jobs in times:
            seconds, agree = matrix_once(args.cells, jobs, args)
            times[jobs].append(seconds)
            agreement.append(agree)
            print(f"run {i + 1}: --jobs {jobs}: {seconds:.0f} s, agreement {agree * 100:.0f}%", flush=True)
    one, many = statistics.median(times[1]), statistics.median(times[args.jobs])
    print(f"cells {args.cells}: median --jobs 1 {one:.0f} s, --jobs {args.jobs} {many:.0f} s, "
          f"ratio {many / one:.2f}; agreement over every run {min(agreement) * 100:.0f}% (lowest)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Benchmark: warm-cache time from `rig run` to verdict, per cell (median of --runs).

Runs the real CLI (`python -m rig.cli run ...`) so everything a user waits for is counted:
image lookup, L1 and L2 boots, binding, driving until the verdict, teardown. The drive
duration is what decides a PASS (--duration, default 20 s); a STALL is decided as soon as
the stall window is over, so STALL cells finish sooner.
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
# The five cells of the nested chain (tests/test_chain_e2e.py has the expected verdicts).
CELLS = [("ppc64", "xive", "fixed"), ("ppc64", "xive", "unfixed"), ("ppc64", "xics", "unfixed"),
         ("x86_64", None, "unfixed"), ("x86_64", None, "fixed")]


def run_cell(arch: str, ic: str | None, vfio: str, duration: float) -> tuple[float, str]:
    with tempfile.TemporaryDirectory(prefix="intx-rig-bench-") as out:
        cmd = [sys.executable, "-m", "rig.cli", "-q", "run", "--arch", arch, "--l1-vfio", vfio,
               "--duration", str(duration), "--out", out] + (["--ic", ic] if ic else [])
        t0 = time.monotonic()
        subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800)
        seconds = time.monotonic() - t0
        verdict = json.loads((Path(out) / "result.json").read_text())["verdict"]["verdict"]
    return seconds, verdict


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=float, default=20)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    results = {}
    for arch, ic, vfio in CELLS:
        name = f"{arch}-{ic or 'ioapic'}-{vfio}"
        runs = [run_cell(arch, ic, vfio, args.duration) for _ in range(args.runs)]
        secs = [s for s, _ in runs]
        results[name] = {"median_s": round(statistics.median(secs), 1), "min_s": round(min(secs), 1),
                         "max_s": round(max(secs), 1), "verdicts": [v for _, v in runs]}
        print(f"{name:24} median {results[name]['median_s']:6.1f} s  (min {min(secs):.1f}, "
              f"max {max(secs):.1f})  verdicts {' '.join(v for _, v in runs)}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

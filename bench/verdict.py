#!/usr/bin/env python3
"""Benchmark: warm-cache time from `rig run` to verdict, per cell and consumer (nested
L2 or fast userspace mode), median of --runs, and the fast/nested ratio per cell.

Runs the real CLI (`python -m rig run ...`) so everything a user waits for is counted:
image lookup, boots, binding, driving until the verdict, teardown. A STALL is decided as
soon as the stall window (5 s) is over; a PASS with --pass-after N (default 100) as soon
as N interrupts were serviced and a stall window went by.
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


def run_cell(arch: str, ic: str | None, vfio: str, consumer: str, args) -> tuple[float, str]:
    with tempfile.TemporaryDirectory(prefix="intx-rig-bench-") as out:
        cmd = [sys.executable, "-m", "rig", "-q", "run", "--arch", arch, "--l1-vfio", vfio,
               "--consumer", consumer, "--duration", str(args.duration),
               "--pass-after", str(args.pass_after), "--out", out] + (["--ic", ic] if ic else [])
        t0 = time.monotonic()
        subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800)
        seconds = time.monotonic() - t0
        verdict = json.loads((Path(out) / "result.json").read_text())["verdict"]["verdict"]
    return seconds, verdict


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--pass-after", type=int, default=100)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    results = {}
    for arch, ic, vfio in CELLS:
        cell = f"{arch}-{ic or 'ioapic'}-{vfio}"
        results[cell] = {}
        for consumer in ("l2", "userspace"):
            runs = [run_cell(arch, ic, vfio, consumer, args) for _ in range(args.runs)]
            secs = [s for s, _ in runs]
            results[cell][consumer] = {"median_s": round(statistics.median(secs), 1),
                                       "min_s": round(min(secs), 1), "max_s": round(max(secs), 1),
                                       "verdicts": [v for _, v in runs]}
            r = results[cell][consumer]
            print(f"{cell:24} {consumer:9} median {r['median_s']:6.1f} s (min {r['min_s']:.1f}, "
                  f"max {r['max_s']:.1f})  verdicts {' '.join(r['verdicts'])}", flush=True)
        ratio = results[cell]["userspace"]["median_s"] / results[cell]["l2"]["median_s"]
        results[cell]["fast_over_nested"] = round(ratio, 2)
        print(f"{cell:24} fast/nested {ratio:.2f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

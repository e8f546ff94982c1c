#!/usr/bin/env python3
"""Benchmark: warm-cache time from `rig run` to verdict, per cell and consumer (nested L2
or fast userspace mode), L1 booted (`--no-snapshot`) against L1 restored from a snapshot
(with an L2: L1 restored with L2 running in it, from the chain's snapshot; in fast mode
L1 restored with the device bound),
measured side by side (alternating), medians of --runs, and the restored/booted ratio.

Runs the real CLI (`python -m rig run ...`) so everything a user waits for is counted:
image lookup, boot or restore, binding, driving until the verdict, teardown. A STALL is
decided as soon as the stall window is over; a PASS with --pass-after N (default 100) as
soon as N interrupts were serviced. The first run of each cell (not counted) makes its
snapshot. With --before DIR (another checkout, e.g. a worktree of the commit before), both
restored, this checkout against that one, alternating: what a change gained.
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
# "restored" for the vfio-user legacy device (it cannot migrate): L1 alone restored, the
# device hotplugged; booted: the device on L1's command line.
CELLS = {
    "ppc64-xive-unfixed": ["--arch", "ppc64", "--ic", "xive", "--l1-vfio", "unfixed"],
    "ppc64-xive-fixed": ["--arch", "ppc64", "--ic", "xive", "--l1-vfio", "fixed"],
    "ppc64-powernv-xive-unfixed": ["--arch", "ppc64", "--machine", "powernv", "--l1-vfio", "unfixed"],
    "x86_64-ioapic-unfixed": ["--arch", "x86_64", "--device", "pci-serial", "--l1-vfio", "unfixed"],
    "x86_64-legacy-unfixed": ["--arch", "x86_64", "--device", "legacy", "--l1-vfio", "unfixed"],
}
MODES = {"booted": ["--no-snapshot"], "restored": []}


def run_cell(cell_args: list[str], consumer: str, mode: str, args, root: Path = ROOT) -> dict:
    with tempfile.TemporaryDirectory(prefix="intx-rig-bench-") as out:
        cmd = [sys.executable, "-m", "rig", "-q", "run", *cell_args, *MODES.get(mode, []), "--consumer", consumer,
               "--duration", str(args.duration), "--pass-after", str(args.pass_after), "--out", out]
        t0 = time.monotonic()
        subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=1800)
        seconds = time.monotonic() - t0
        result = json.loads((Path(out) / "result.json").read_text())
    chain = result.get("chain") or {}
    bound = " (device bound)" if chain.get("bound_snapshot") and chain.get("l1_started") == "restored" else ""
    return {"s": seconds, "verdict": result["verdict"]["verdict"], "l1": chain.get("l1_started", "") + bound,
            "l2": chain.get("l2_started", ""), "l1_ready_s": result["times"].get("l1_ready_s")}


def summary(runs: list[dict]) -> dict:
    secs = [r["s"] for r in runs]
    return {"median_s": round(statistics.median(secs), 1), "min_s": round(min(secs), 1),
            "max_s": round(max(secs), 1), "verdicts": [r["verdict"] for r in runs],
            "l1": sorted({r["l1"] for r in runs}), "l2": sorted({r["l2"] for r in runs}),
            "l1_ready_median_s": round(statistics.median(r["l1_ready_s"] or 0 for r in runs), 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--pass-after", type=int, default=100)
    ap.add_argument("--cells", default=",".join(CELLS), help="comma-separated, of: " + ", ".join(CELLS))
    ap.add_argument("--consumers", default="userspace,l2")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--before", type=Path, help="another checkout, run restored alternately with this one")
    args = ap.parse_args()
    # (label, checkout, mode): booted against restored here, or the other checkout against this one
    variants = [("booted", ROOT, "booted"), ("restored", ROOT, "restored")] if args.before is None else \
        [("before", args.before.resolve(), "restored"), ("now", ROOT, "restored")]
    (a, *_), (b, *_) = variants
    results: dict = {}
    for cell in args.cells.split(","):
        for consumer in args.consumers.split(","):
            for _, root, _ in variants:
                run_cell(CELLS[cell], consumer, "restored", args, root)   # makes the snapshot
            runs: dict[str, list[dict]] = {label: [] for label, _, _ in variants}
            for _ in range(args.runs):
                for label, root, mode in variants:                       # side by side, alternating
                    runs[label].append(run_cell(CELLS[cell], consumer, mode, args, root))
            r = {m: summary(v) for m, v in runs.items()}
            r[f"{b}_over_{a}"] = round(r[b]["median_s"] / r[a]["median_s"], 2)
            results[f"{cell}-{consumer}"] = r
            for m in runs:
                print(f"{cell:28} {consumer:9} {m:8} median {r[m]['median_s']:6.1f} s (min {r[m]['min_s']:.1f}, "
                      f"max {r[m]['max_s']:.1f}), L1 ready {r[m]['l1_ready_median_s']:.1f} s, "
                      f"L1 {r[m]['l1']}, L2 {r[m]['l2']}, verdicts {' '.join(r[m]['verdicts'])}", flush=True)
            print(f"{cell:28} {consumer:9} {b}/{a} {r[f'{b}_over_{a}']:.2f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

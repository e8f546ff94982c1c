#!/usr/bin/env python3
"""Benchmark: a kernel developer's loop, per arch, on a Linux source tree: the first minimal
build (`rig kernel build`, empty build directory), a one-file rebuild (touch
drivers/vfio/pci/vfio_pci_intrs.c, build again), and a source change to a fast-mode verdict
(touch the same file, `rig run --kernel-tree ... --consumer userspace`: the incremental build,
the image, the boot, the drive, the verdict). Medians of --runs (the first build: of
--first-runs, it costs minutes), with the date and the machine.

The real CLI, so everything a user waits for is counted. Goals on 2 cores (issue 11): first
minimal build under 6 min per arch; a one-file change to a verdict under 90 s on ppc64 and
under 60 s on x86_64.

  .venv/bin/python bench/kernel.py --tree /path/to/linux-source-6.12 [--arch ppc64] [--json F]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOUCHED = "drivers/vfio/pci/vfio_pci_intrs.c"
IC = {"ppc64": ["--ic", "xive"], "x86_64": []}


def rig(*args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "rig", "-q", *args], cwd=ROOT, capture_output=True, text=True,
                       timeout=4 * 3600)
    return time.monotonic() - t0, r


def checked(seconds: float, r: subprocess.CompletedProcess[str], ok: tuple[int, ...] = (0,)) -> float:
    if r.returncode not in ok:
        sys.exit(f"bench: {' '.join(r.args[2:])} exited {r.returncode}: {r.stderr[-1500:]}")
    return seconds


def build(arch: str, tree: Path, build_dir: Path) -> float:
    return checked(*rig("kernel", "build", "--arch", arch, "--tree", str(tree), "--build-dir", str(build_dir)))


def touch(tree: Path) -> None:
    os.utime(tree / TOUCHED)


def verdict(arch: str, tree: Path, build_dir: Path) -> tuple[float, str]:
    with tempfile.TemporaryDirectory(prefix="intx-rig-bench-") as out:
        seconds, r = rig("run", "--arch", arch, *IC[arch], "--consumer", "userspace", "--duration", "30",
                         "--pass-after", "10", "--kernel-tree", str(tree), "--build-dir", str(build_dir),
                         "--out", out)
        checked(seconds, r, (0, 1))
        return seconds, json.loads((Path(out) / "result.json").read_text())["verdict"]["verdict"]


def stats(values: list[float]) -> dict[str, float]:
    return {"median_s": round(statistics.median(values), 1), "min_s": round(min(values), 1),
            "max_s": round(max(values), 1), "runs": len(values)}


def bench_arch(arch: str, tree: Path, work: Path, args: argparse.Namespace) -> dict[str, object]:
    build_dir = work / arch
    first = []
    for _ in range(args.first_runs):
        shutil.rmtree(build_dir, ignore_errors=True)
        first.append(build(arch, tree, build_dir))
    rebuild = []
    for _ in range(args.runs):
        touch(tree)
        rebuild.append(build(arch, tree, build_dir))
    to_verdict, verdicts = [], []
    for _ in range(args.runs):
        touch(tree)
        seconds, v = verdict(arch, tree, build_dir)
        to_verdict.append(seconds)
        verdicts.append(v)
    return {"first_build": stats(first), "one_file_rebuild": stats(rebuild),
            "change_to_fast_verdict": stats(to_verdict), "verdicts": verdicts}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", required=True, type=Path, help="a Linux source tree (not configured in place)")
    ap.add_argument("--arch", action="append", choices=("ppc64", "x86_64"), help="default: both")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--first-runs", type=int, default=1)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    results: dict[str, object] = {"date": time.strftime("%Y-%m-%d"), "machine": platform.node(),
                                  "cores": os.cpu_count(), "tree": str(args.tree)}
    with tempfile.TemporaryDirectory(prefix="intx-rig-bench-kbuild-") as work:
        for arch in args.arch or ["ppc64", "x86_64"]:
            r = bench_arch(arch, args.tree, Path(work), args)
            results[arch] = r
            for what in ("first_build", "one_file_rebuild", "change_to_fast_verdict"):
                s = r[what]
                assert isinstance(s, dict)
                print(f"{arch:7} {what:24} median {s['median_s']:7.1f} s (min {s['min_s']:.1f}, max "
                      f"{s['max_s']:.1f}, {s['runs']} runs)", flush=True)
            print(f"{arch:7} verdicts {' '.join(r['verdicts'])}", flush=True)    # type: ignore[arg-type]
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

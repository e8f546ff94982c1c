#!/usr/bin/env python3
"""Benchmark: the second tree of an A/B pair, built after the first (issue 29). A copy of a
tree that `rig kernel build` has built (so ccache's store holds its compilations) with one
file changed (the fix's IRQ_DISABLE_UNLAZY lines taken out of vfio_pci_intrs.c, the usual
patch-or-not pair), built two ways side by side in each run:

- now: into its default build directory, `.intx-rig-<arch>` in the tree (kbuild names the
  sources `../...`, the same command lines as the first tree's);
- before: into a build directory in the rig's cache named after the tree, the default until
  2026-12-06 (sources named by their absolute path: nothing of the first tree's matches).

Each build gets a fresh copy; time from command to kernel, and the compilations ccache
served (from the build summary). Medians of --runs, with the date and the machine.

  .venv/bin/python bench/ab.py --tree /path/to/built/linux-source-6.12 [--arch ppc64] [--runs 3]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHANGED = "drivers/vfio/pci/vfio_pci_intrs.c"
FIX_LINE = re.compile(r".*IRQ_DISABLE_UNLAZY.*\n")
SERVED = re.compile(r"ccache\s+(\d+) of (\d+) compilations from ccache")


def copy_with_one_change(tree: Path, into: Path) -> Path:
    """The tree's sources (no build directory), with the fix's lines removed from one file."""
    copy = into / tree.name
    shutil.copytree(tree, copy, symlinks=True, ignore=shutil.ignore_patterns(".intx-rig-*"))
    source = copy / CHANGED
    text = source.read_text()
    changed, n = FIX_LINE.subn("", text)
    if not n:
        sys.exit(f"bench: {tree / CHANGED} has no IRQ_DISABLE_UNLAZY line to take out (not a fixed tree?)")
    source.write_text(changed)
    return copy


def build(arch: str, tree: Path, build_dir: Path | None) -> dict[str, float]:
    cmd = [sys.executable, "-m", "rig", "-q", "kernel", "build", "--arch", arch, "--tree", str(tree)]
    cmd += ["--build-dir", str(build_dir)] if build_dir else []
    t0 = time.monotonic()
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=4 * 3600)
    seconds = time.monotonic() - t0
    if r.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd[2:])} exited {r.returncode}: {r.stderr[-1500:]}")
    served = SERVED.search(r.stdout)
    hits, calls = (int(served.group(1)), int(served.group(2))) if served else (0, 0)
    return {"seconds": seconds, "hits": hits, "calls": calls}


def before_build_dir(arch: str, tree: Path) -> Path:
    """Where the rig built a tree before 2026-12-06: the cache, by the tree's real path."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "intx-rig"
    key = hashlib.sha256(str(tree.resolve()).encode()).hexdigest()[:12]
    return cache / "kernel-builds" / f"{tree.resolve().name}-{key}-{arch}"


def one_run(arch: str, tree: Path, way: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="intx-rig-bench-ab-", dir=tree.parent) as work:
        copy = copy_with_one_change(tree, Path(work))
        build_dir = before_build_dir(arch, copy) if way == "before" else None
        try:
            return build(arch, copy, build_dir)
        finally:
            if build_dir:
                shutil.rmtree(build_dir, ignore_errors=True)


def summary(runs: list[dict[str, float]]) -> dict[str, float]:
    seconds = [r["seconds"] for r in runs]
    return {"median_s": round(statistics.median(seconds), 1), "min_s": round(min(seconds), 1),
            "max_s": round(max(seconds), 1), "runs": len(runs),
            "hits": statistics.median(r["hits"] for r in runs), "calls": statistics.median(r["calls"] for r in runs)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", required=True, type=Path, help="a Linux tree `rig kernel build` has built")
    ap.add_argument("--arch", default="ppc64", choices=("ppc64", "x86_64"))
    ap.add_argument("--runs", type=int, default=3, help="of the new way")
    ap.add_argument("--before-runs", type=int, default=1, help="of the way before (minutes each)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    ways = {"now": [], "before": []}       # type: dict[str, list[dict[str, float]]]
    for i in range(max(args.runs, args.before_runs)):
        for way, runs in (("now", args.runs), ("before", args.before_runs)):
            if i < runs:
                ways[way].append(one_run(args.arch, args.tree, way))
                r = ways[way][-1]
                print(f"{way:6} run {i + 1}: {r['seconds']:.0f} s, {r['hits']:.0f} of {r['calls']:.0f} from ccache",
                      flush=True)
    results = {"date": time.strftime("%Y-%m-%d"), "machine": platform.node(), "cores": os.cpu_count(),
               "tree": str(args.tree), "arch": args.arch, **{w: summary(r) for w, r in ways.items()}}
    now, before = results["now"], results["before"]
    print(f"now:    median {now['median_s']} s ({now['runs']} runs), {now['hits']:.0f} of {now['calls']:.0f} "
          f"compilations from ccache\nbefore: median {before['median_s']} s ({before['runs']} runs), "
          f"{before['hits']:.0f} of {before['calls']:.0f}\nbefore/now: {before['median_s'] / now['median_s']:.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

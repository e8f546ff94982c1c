#!/usr/bin/env python3
"""Benchmark: image build (cold and warm) and L0 start -> L1 SSH ready, per arch.

  cold build : empty image cache, Debian packages already downloaded (seeded by hard links
               from the main cache, so the network's speed is not measured)
  warm build : the same again, everything cached (a lookup plus manifest check)
  boot       : L0 QEMU start -> "rig-init: ready" on the console -> first SSH command

Reports median, min and max of --runs runs (default 3); the machines are noisy, so
compare medians and ratios, not single numbers. Writes JSON with --json FILE.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from guest_images.build import ImageBuilder  # noqa: E402
from rig.core.cache import Cache, default_cache_dir  # noqa: E402
from rig.core.progress import Progress  # noqa: E402
from rig.core.targets import PROFILES  # noqa: E402
from rig.debian.packages import Resolver  # noqa: E402
from rig.guests.l1 import L1Guest  # noqa: E402
from rig.host.accel import choose_accel  # noqa: E402
from rig.host.keys import load_or_create  # noqa: E402
from rig.host.qemu import choose_qemu  # noqa: E402
from rig.host.rundir import RunDir  # noqa: E402


def stats(xs: list[float]) -> dict:
    return {"median": round(statistics.median(xs), 2), "min": round(min(xs), 2),
            "max": round(max(xs), 2), "runs": [round(x, 2) for x in xs]}


def seed_cache(main: Cache, target: Path) -> None:
    """Hard-link downloads, locks, apt lists and keys: a cold *build*, not a cold network."""
    for part in ("debs", "locks", "apt", "keys"):
        src = main.root / part
        if src.exists():
            shutil.copytree(src, target / part, copy_function=os.link, dirs_exist_ok=True)


def build_once(cache: Cache, prof, quiet: Progress) -> float:
    resolver = Resolver(cache, quiet)
    t0 = time.monotonic()
    with ImageBuilder(cache, resolver, load_or_create(cache.root / "keys"), quiet) as b:
        b.l1(prof)
    return time.monotonic() - t0


def bench_arch(prof, runs: int, main: Cache) -> dict:
    quiet = Progress(quiet=True)
    build_once(main, prof, Progress())  # make sure downloads are in the main cache
    cold, warm = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="intx-rig-bench-") as d:
            seed_cache(main, Path(d))
            cache = Cache(Path(d))
            cold.append(build_once(cache, prof, quiet))
            warm.append(build_once(cache, prof, quiet))
    qemu = choose_qemu(prof, main, Resolver(main, quiet), quiet)
    accel = choose_accel(prof, qemu)
    keys = load_or_create(main.root / "keys")
    with ImageBuilder(main, Resolver(main, quiet), keys, quiet) as b:
        image = b.l1(prof)
    console, ssh = [], []
    for i in range(runs):
        with tempfile.TemporaryDirectory(prefix="intx-rig-bench-logs-") as logs, RunDir("bench") as rd, \
                L1Guest(prof, qemu, image, accel, keys, rd, Path(logs), quiet) as g:
            times = g.boot(timeout=300)
            g.shutdown()
        console.append(times.console_ready)
        ssh.append(times.ssh_ready)
        print(f"  {prof.name} boot {i + 1}/{runs}: console {times.console_ready:.1f} s, "
              f"SSH {times.ssh_ready:.1f} s", file=sys.stderr)
    return {"accel": accel.name, "qemu": qemu.describe(), "cold_build_s": stats(cold),
            "warm_build_s": stats(warm), "console_ready_s": stats(console), "ssh_ready_s": stats(ssh)}


def bench_devices(runs: int, main_cache: Cache) -> dict:
    """x86 L1 boot to SSH with pci-serial vs the legacy device (vfio-user server process)."""
    from rig.chain.device import make_device
    prof = PROFILES["x86_64"]
    quiet = Progress(quiet=True)
    qemu = choose_qemu(prof, main_cache, Resolver(main_cache, quiet), quiet)
    accel = choose_accel(prof, qemu)
    keys = load_or_create(main_cache.root / "keys")
    with ImageBuilder(main_cache, Resolver(main_cache, quiet), keys, quiet) as b:
        image = b.l1(prof)
    out = {}
    for kind in ("pci-serial", "legacy"):
        times = []
        for _ in range(runs):
            with tempfile.TemporaryDirectory(prefix="intx-rig-bench-logs-") as logs, RunDir("bench") as rd:
                dev = make_device(kind, prof, qemu, rd, Path(logs))
                try:
                    from rig.guests.l1 import GuestConfig
                    with L1Guest(prof, qemu, image, accel, keys, rd, Path(logs), quiet,
                                 GuestConfig(extra_args=dev.qemu_args())) as g:
                        times.append(g.boot(timeout=300).ssh_ready)
                        g.shutdown()
                finally:
                    dev.close()
        out[kind] = stats(times)
    out["legacy_over_pci_serial"] = round(out["legacy"]["median"] / out["pci-serial"]["median"], 2)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="all", choices=["all", *PROFILES])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--devices-only", action="store_true",
                    help="only compare x86 L1 boot with pci-serial and with the legacy device")
    args = ap.parse_args()
    main_cache = Cache(default_cache_dir())
    devices = bench_devices(args.runs, main_cache)
    print(f"x86_64 L1 SSH ready: pci-serial {devices['pci-serial']['median']:.1f} s, legacy "
          f"(vfio-user) {devices['legacy']['median']:.1f} s, ratio {devices['legacy_over_pci_serial']:.2f} "
          f"(medians of {args.runs})")
    if args.devices_only:
        return 0
    profs = PROFILES.values() if args.arch == "all" else [PROFILES[args.arch]]
    results = {p.name: bench_arch(p, args.runs, main_cache) for p in profs}
    print(f"{'arch':8} {'accel':5} {'cold build':>11} {'warm build':>11} {'console':>8} {'SSH ready':>10}"
          f"   (medians of {args.runs}, seconds)")
    for name, r in results.items():
        print(f"{name:8} {r['accel']:5} {r['cold_build_s']['median']:11.2f} {r['warm_build_s']['median']:11.2f}"
              f" {r['console_ready_s']['median']:8.1f} {r['ssh_ready_s']['median']:10.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps({**results, "devices": devices}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

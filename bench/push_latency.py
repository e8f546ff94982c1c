#!/usr/bin/env python3
"""How long a pushed byte waits to be read, over recorded runs: the evidence behind the stall
window (rig.core.timeouts.STALL_WINDOW_S). Reads every result.json under the directories
given (a soak's, a matrix's), takes each PASS run's interrupt path (the device's push and
the consumer's read of it, on one clock) and prints, per consumer kind, the distribution of
push -> L1's handler and push -> read, with the worst run.

    .venv/bin/python bench/push_latency.py results/soak
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path


def latencies(result: dict) -> tuple[list[float], list[float]]:
    """(push -> L1 handler, push -> read) for each push of one run that was read."""
    to_handler, to_read = [], []
    push = handler = None
    for t, lane, kind, _ in (result.get("interrupt_path") or {}).get("events") or []:
        if lane == "device" and kind == "push":
            push, handler = t, None
        elif push is not None and handler is None and lane == "l1_host" and kind == "handler":
            handler = t - push
        elif push is not None and lane == "consumer" and kind == "serviced":
            to_read.append(t - push)
            if handler is not None:
                to_handler.append(handler)
            push = None
    return to_handler, to_read


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dirs", nargs="+", type=Path)
    args = ap.parse_args()
    found: dict[str, list[float]] = defaultdict(list)
    worst: dict[str, tuple[float, str]] = {}
    runs = 0
    for f in (p for d in args.dirs for p in d.rglob("result.json")):
        try:
            result = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if result.get("verdict", {}).get("verdict") != "PASS":
            continue
        runs += 1
        kind = "nested" if result.get("consumer") == "l2" else "fast"
        to_handler, to_read = latencies(result)
        found[f"{kind} push -> L1 handler"] += to_handler
        found[f"{kind} push -> read"] += to_read
        if to_read and max(to_read) > worst.get(kind, (0.0, ""))[0]:
            worst[kind] = (max(to_read), str(f.parent))
    print(f"{runs} PASS runs")
    for name, v in sorted(found.items()):
        v.sort()
        n = len(v)
        q = {p: v[min(n - 1, int(p * n))] * 1000 for p in (0.5, 0.99, 0.999)}
        print(f"{name:24} n={n:7d}  median {q[0.5]:6.1f} ms  p99 {q[0.99]:6.1f}  p99.9 {q[0.999]:6.1f}  "
              f"max {v[-1] * 1000:7.1f}")
    for kind, (s, where) in sorted(worst.items()):
        print(f"longest read, {kind}: {s:.2f} s in {where}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

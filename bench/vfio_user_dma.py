#!/usr/bin/env python3
"""Benchmark: DMA_MAP/DMA_UNMAP messages per second through the vfio-user server.

A pseries boot sends ~786,000 single-page DMA_UNMAPs; the server must keep up (target
>= 50,000/s). A client on a socketpair pipelines N map+unmap pairs of single pages and a
reader thread takes the replies; reports the median rate of --runs runs.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from device_models.legacy_uart import LegacyUart  # noqa: E402
from device_models.vfio_user import protocol as p  # noqa: E402
from device_models.vfio_user.server import Connection  # noqa: E402


def one_run(n: int) -> float:
    a, b = socket.socketpair()
    device = LegacyUart()
    server = threading.Thread(target=Connection(b, device).serve, daemon=True)
    server.start()
    msgs = []
    for i in range(n):
        addr = 0x100000 + i * 4096
        msgs.append(p.HEADER.pack((2 * i) & 0xFFFF, p.DMA_MAP, 48, 0, 0) + p.DMA_MAP_STRUCT.pack(32, 3, 0, addr, 4096))
        msgs.append(p.HEADER.pack((2 * i + 1) & 0xFFFF, p.DMA_UNMAP, 40, 0, 0)
                    + p.DMA_UNMAP_STRUCT.pack(24, 0, addr, 4096))
    blob = b"".join(msgs)
    expected = n * (16 + 16 + 24)  # map replies carry no payload, unmap replies echo 24 bytes
    got = 0
    done = threading.Event()

    def reader():
        nonlocal got
        while got < expected:
            chunk = a.recv(1 << 20)
            if not chunk:
                break
            got += len(chunk)
        done.set()
    threading.Thread(target=reader, daemon=True).start()
    t0 = time.perf_counter()
    a.sendall(blob)
    done.wait(120)
    seconds = time.perf_counter() - t0
    a.close()
    server.join(5)
    device.close()
    return 2 * n / seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    rates = [one_run(args.pairs) for _ in range(args.runs)]
    print(f"DMA map+unmap messages: median {statistics.median(rates):,.0f}/s "
          f"(min {min(rates):,.0f}, max {max(rates):,.0f}; {args.runs} runs of {2 * args.pairs:,})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How long each cell's runs took, kept in the cache, so that the next matrix starts the
longest first: with runs two or three at a time, a long cell (PowerNV's boot L1: 15 s fast,
30 s nested) started last would keep one core busy alone at the end. On today's 20 cells the
table's order happened to share them out as well (114.6 s against 117.4 s longest first,
docs/measurements.md); a --cells choice or a kernel-tree matrix need not.

The record is a file the rig did not just write: only {cell id: seconds} pairs that make
sense are taken from it, and a bad one only costs the order.
"""

from __future__ import annotations

import statistics

from rig.core.cache import Cache
from rig.core.spec import MAX_SECONDS
from rig.matrix.cells import Cell
from rig.matrix.summary import CellSummary

RECORD = ("matrix", "seconds.json")


def read(cache: Cache) -> dict[str, float]:
    data = cache.read_json(*RECORD)
    if not isinstance(data, dict):
        return {}
    return {k: float(v) for k, v in data.items()
            if isinstance(k, str) and isinstance(v, int | float) and not isinstance(v, bool) and 0 < v <= MAX_SECONDS}


def record(cache: Cache, results: list[CellSummary]) -> None:
    """This matrix's median seconds per cell, over what was known of the others."""
    seconds = read(cache)
    seconds.update({r.id: round(statistics.median(x.seconds for x in r.runs), 1) for r in results if r.runs})
    cache.write_json(seconds, *RECORD)


def longest_first(cells: list[Cell], seconds: dict[str, float]) -> list[Cell]:
    """The cells never timed first, in the table's order (any of them may be long), then the
    others, longest first."""
    unknown = [c for c in cells if c.id not in seconds]
    known = sorted((c for c in cells if c.id in seconds), key=lambda c: -seconds[c.id])
    return unknown + known

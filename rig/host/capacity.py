"""How many chains this machine runs side by side (rig matrix --jobs auto, pytest -n auto)."""

from __future__ import annotations

import os
from pathlib import Path

# One chain keeps one L0 QEMU busy: L1 has a single vCPU, one TCG thread, and L2 runs
# inside it. The rig and the device model beside it mostly wait. So a machine runs as many
# chains at once as it has cores, and as its memory holds (L1's 2 GiB plus QEMU's own).
CORES_PER_CHAIN = 1
MEMORY_PER_CHAIN_KB = 3 * 1024 * 1024


def parallel_chains(meminfo: str | None = None, cores: int | None = None) -> int:
    """How many chains (matrix cells, e2e tests) this machine runs side by side without
    oversubscribing it. RIG_JOBS overrides."""
    if os.environ.get("RIG_JOBS", "").isdigit() and int(os.environ["RIG_JOBS"]) > 0:
        return int(os.environ["RIG_JOBS"])
    cores = cores if cores is not None else len(os.sched_getaffinity(0))
    if meminfo is None:
        meminfo = Path("/proc/meminfo").read_text()
    avail = next((int(ln.split()[1]) for ln in meminfo.splitlines() if ln.startswith("MemAvailable:")), 0)
    return max(1, min(cores // CORES_PER_CHAIN, avail // MEMORY_PER_CHAIN_KB))

"""Shared test set-up. Markers: unit (no QEMU, seconds), integration (builds images,
boots one guest at a time), e2e (the nested chain)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import sys
from pathlib import Path

import pytest

from rig.cache import default_cache_dir

ROOT = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(items):
    # Every test module says its tier with pytestmark; a test without one is a mistake.
    for item in items:
        if not any(item.get_closest_marker(m) for m in ("unit", "integration", "e2e")):
            raise pytest.UsageError(f"{item.nodeid} has no tier marker (unit/integration/e2e)")


@pytest.fixture(scope="session")
def rig_cache_dir() -> Path:
    """Integration tests share the user's cache (RIG_TEST_CACHE overrides): `make demo`
    and `make test` then build the images once between them."""
    return Path(os.environ.get("RIG_TEST_CACHE") or default_cache_dir())


def run_rig(*args: str, cache: Path | None = None, timeout: float = 900, env: dict | None = None):
    cmd = [sys.executable, "-m", "rig.cli"]
    if cache:
        cmd += ["--cache-dir", str(cache)]
    return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT, env={**os.environ, **(env or {})})


@pytest.fixture
def short_tmp():
    """A temporary directory with a short path: UNIX socket paths must fit in sun_path."""
    d = Path(tempfile.mkdtemp(prefix="rigt-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)

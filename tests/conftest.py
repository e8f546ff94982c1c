"""Shared test set-up. Markers: unit (no QEMU, seconds), integration (builds images,
boots one guest at a time), e2e (the nested chain)."""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from rig.core.cache import default_cache_dir

ROOT = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(config, items):
    # Every test module says its tier with pytestmark; a test without one is a mistake.
    for item in items:
        if not any(item.get_closest_marker(m) for m in ("unit", "integration", "e2e")):
            raise pytest.UsageError(f"{item.nodeid} has no tier marker (unit/integration/e2e)")
    if getattr(config.option, "loadgroup", False):
        for item in items:
            name_the_xdist_group(item)


def name_the_xdist_group(item: pytest.Item) -> None:
    """What pytest-xdist 3.8 does on a worker for `--dist loadgroup`, done so that pytest 9.2
    sees it: the test's xdist_group as a suffix of its node id, by which the controller sends
    a group's tests to one worker. xdist sets `item._nodeid`, which pytest 9.2 no longer reads
    (its node id is `item._id`), so the groups were ignored: two snapshot tests that must not
    overlap ran side by side and spoiled each other's snapshot (a CI run, 2026-12-07)."""
    names = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                    for m in item.iter_markers("xdist_group")})
    if not names or "@" in item.nodeid:
        return
    suffixed = f"{item.nodeid}@{'_'.join(names)}"
    try:
        from _pytest.nodeid import coerce_node_id
        item._id = coerce_node_id(suffixed)
    except ImportError:            # a pytest before node ids were objects: xdist's own way works
        item._nodeid = suffixed


def pytest_xdist_auto_num_workers(config):
    """`pytest -n auto`: as many workers as chains fit side by side on this machine (one per
    core, as memory allows: rig.host.parallel_chains), so a 2-core machine runs two."""
    from rig.host.capacity import parallel_chains
    return parallel_chains()


@pytest.fixture(scope="session")
def rig_cache_dir() -> Path:
    """Integration tests share the user's cache (RIG_TEST_CACHE overrides): `make demo`
    and `make test` then build the images once between them."""
    return Path(os.environ.get("RIG_TEST_CACHE") or default_cache_dir())


RESULT_SCHEMA = ROOT / "docs" / "result.schema.json"


def load_result(out: Path) -> dict:
    """out/result.json, checked against docs/result.schema.json and read back through its
    type (rig.reports.result.RunResult): every result a test produces is validated."""
    import jsonschema

    from rig.reports.result import RunResult

    data = json.loads((out / "result.json").read_text())
    jsonschema.validate(data, json.loads(RESULT_SCHEMA.read_text()))
    RunResult.from_json(data)
    return data


def run_rig(*args: str, cache: Path | None = None, timeout: float = 900, env: dict | None = None):
    cmd = [sys.executable, "-m", "rig"]
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


@pytest.fixture
def run_base(short_tmp, monkeypatch):
    """A private RIG_RUN_DIR: what a test's rig leaves behind is visible there alone."""
    monkeypatch.setenv("RIG_RUN_DIR", str(short_tmp))
    return short_tmp / "intx-rig"


def qemu_processes_under(base: Path) -> list[str]:
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"qemu-system" in cmd and str(base).encode() in cmd:
                out.append(pid)
    return out


def wait_for_line(proc: subprocess.Popen, needle: str, timeout: float) -> None:
    """Wait for a line of proc's stderr holding needle. Read from the file descriptor with
    a buffer of our own (kept on proc for the next call): select() on a buffered reader
    misses lines that arrived in one chunk with the previous one, and then waits for the
    next output (a matrix test sent its Ctrl-C one whole run late that way)."""
    deadline = time.monotonic() + timeout
    fd = proc.stderr.fileno()
    pending: list[str] = getattr(proc, "_lines", [])
    partial: bytes = getattr(proc, "_partial", b"")
    seen = []
    try:
        while True:
            while pending:
                line = pending.pop(0)
                seen.append(line)
                if needle in line:
                    return
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(fd, 65536) if ready else b""
            if not chunk:
                break
            *lines, partial = (partial + chunk).split(b"\n")
            pending.extend(ln.decode(errors="replace") + "\n" for ln in lines)
    finally:
        proc._lines, proc._partial = pending, partial     # type: ignore[attr-defined]
    proc.kill()
    pytest.fail(f"{needle!r} did not appear within {timeout} s: {''.join(seen)[-2000:]}")


def wait_gone(pid: int, timeout: float) -> bool:
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    finally:
        os.close(fd)


def nothing_left(run_base: Path) -> bool:
    """No QEMU under the run base and no run directory left in it."""
    return qemu_processes_under(run_base) == [] and (not run_base.exists() or not any(run_base.iterdir()))

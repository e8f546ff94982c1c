"""`rig boot`: L1 reaches SSH on both arches and nothing is left behind, however it ends."""

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, run_rig
from rig import runtime

pytestmark = pytest.mark.integration


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


@pytest.fixture
def run_base(short_tmp, monkeypatch):
    monkeypatch.setenv("RIG_RUN_DIR", str(short_tmp))
    return short_tmp / "intx-rig"


@pytest.mark.parametrize("arch", ["x86_64", "ppc64"])
def test_boot_reaches_ssh_and_powers_off(arch, rig_cache_dir, run_base, tmp_path):
    out = tmp_path / "out"
    r = run_rig("boot", "--arch", arch, "--out", str(out), "--command", "uname -m; cat /proc/cmdline",
                cache=rig_cache_dir, env={"RIG_RUN_DIR": str(run_base.parent)})
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads((out / "boot.json").read_text())
    assert summary["shutdown"] == "powerdown"
    assert summary["arch"] == arch and summary["kernel"].startswith("6.12.")
    assert ("ppc64le" if arch == "ppc64" else "x86_64") in r.stdout
    assert "L1 accelerator:" in r.stdout and "L0 QEMU:" in r.stdout
    assert (out / "l1-console.log").read_text().count("rig-init: ready") == 1
    assert list(run_base.iterdir()) == [] and qemu_processes_under(run_base) == []


def start_boot(rig_cache_dir, run_base) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "rig.cli", "--cache-dir", str(rig_cache_dir), "boot",
           "--arch", "x86_64", "--command", "sleep 600"]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "RIG_RUN_DIR": str(run_base.parent)})


def wait_for_line(proc: subprocess.Popen, needle: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], deadline - time.monotonic())
        if not ready:
            break
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return
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


def test_ctrl_c_cleans_up(rig_cache_dir, run_base):
    proc = start_boot(rig_cache_dir, run_base)
    wait_for_line(proc, "L1 SSH ready", 300)
    assert len(qemu_processes_under(run_base)) == 1
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    assert qemu_processes_under(run_base) == [] and list(run_base.iterdir()) == []


def test_sigkill_of_the_rig_leaves_nothing_after_the_next_start(rig_cache_dir, run_base):
    proc = start_boot(rig_cache_dir, run_base)
    wait_for_line(proc, "L1 SSH ready", 300)
    (qemu_pid,) = map(int, qemu_processes_under(run_base))
    proc.kill()
    proc.wait(timeout=10)
    assert wait_gone(qemu_pid, 10), "QEMU outlived the SIGKILLed rig"
    assert len(list(run_base.iterdir())) == 1  # the killed rig could not remove its run dir
    runtime.reap_stale(run_base)  # what the next rig start does first
    assert list(run_base.iterdir()) == []

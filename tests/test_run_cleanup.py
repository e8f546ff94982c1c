"""`rig run` ends cleanly however it ends: an infrastructure failure is ERROR (never STALL),
Ctrl-C tears down all three layers, and the next run right after works."""

import os
import signal
import subprocess
import sys

import pytest
from conftest import ROOT, load_result, qemu_processes_under, run_rig, wait_for_line


@pytest.mark.integration
def test_guest_that_does_not_boot_in_time_is_error_not_stall(rig_cache_dir, run_base, short_tmp):
    out = short_tmp / "out"
    # Booted (a restored L1 is up at once, and L2's start, restarted twice, would be what
    # times out: 34 s of the same ERROR; L2's failed starts are tests/test_l2_restart_e2e.py's)
    r = run_rig("run", "--arch", "x86_64", "--boot-timeout", "1", "--no-snapshot", "--out", str(out),
                cache=rig_cache_dir, env={"RIG_RUN_DIR": str(run_base.parent)})
    assert r.returncode == 125, r.stdout + r.stderr[-1000:]
    result = load_result(out)
    assert result["verdict"]["verdict"] == "ERROR"
    assert "did not appear on the console within 1 s" in result["verdict"]["reason"]
    assert 'errors="1"' in (out / "junit.xml").read_text()
    assert qemu_processes_under(run_base) == [] and list(run_base.iterdir()) == []


@pytest.mark.e2e
def test_ctrl_c_while_driving_then_a_second_run_works(rig_cache_dir, run_base, short_tmp):
    cmd = [sys.executable, "-m", "rig", "--cache-dir", str(rig_cache_dir), "run", "--arch",
           "x86_64", "--duration", "300", "--out", str(short_tmp / "first")]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "RIG_RUN_DIR": str(run_base.parent)})
    wait_for_line(proc, "driving interrupts", 600)
    assert len(qemu_processes_under(run_base)) == 1  # L0's; L2's QEMU runs inside L1
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=90) == 130
    assert qemu_processes_under(run_base) == [] and list(run_base.iterdir()) == []
    second = short_tmp / "second"
    r = run_rig("run", "--arch", "x86_64", "--duration", "10", "--pass-after", "30", "--out", str(second),
                cache=rig_cache_dir, env={"RIG_RUN_DIR": str(run_base.parent)}, timeout=900)
    assert r.returncode == 0, r.stderr[-1500:]
    assert load_result(second)["verdict"]["verdict"] == "PASS"

"""rig run --hold for real: two chains held side by side (a ppc64 XIVE STALL and an x86
PASS, fast mode), reached with rig ssh and rig monitor, one stopped with rig stop while the
other stays, the other ending at its time limit; and Ctrl-C on a held run in the terminal.
The verdict's exit status is the same held or not, and nothing is left. About 2 minutes."""

import json
import os
import signal
import subprocess
import sys

import pytest
from conftest import ROOT, load_result, nothing_left, run_rig, wait_for_line, wait_gone

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("rig_chain")]

PPC_STALL = ("run", "--arch", "ppc64", "--ic", "xive", "--l1-vfio", "unfixed", "--consumer", "userspace",
             "--duration", "20")
X86_PASS = ("run", "--arch", "x86_64", "--consumer", "userspace", "--duration", "8", "--pass-after", "30")


def start(rig_cache_dir, run_base, *args):
    cmd = [sys.executable, "-m", "rig", "--cache-dir", str(rig_cache_dir), *args]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "RIG_RUN_DIR": str(run_base.parent)})


def held_pid(out):
    return json.loads((out / "held.json").read_text())["pid"]


@pytest.fixture
def held_rigs(short_tmp):
    """A failed test must not leave a held chain behind: whatever is still held, ends."""
    yield
    for record in short_tmp.glob("*/held.json"):
        pid = json.loads(record.read_text())["pid"]
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        wait_gone(pid, 120)


def test_two_held_chains_side_by_side(rig_cache_dir, run_base, short_tmp, held_rigs):
    stall, passing = short_tmp / "stall", short_tmp / "pass"
    a = start(rig_cache_dir, run_base, *PPC_STALL, "--hold", "10", "--detach", "--out", str(stall))
    # 45 s: long enough for the checks below to reach this chain before its limit ends the hold
    b = start(rig_cache_dir, run_base, *X86_PASS, "--hold", "0.75", "--detach", "--out", str(passing))
    a_out, a_err = a.communicate(timeout=900)
    b_out, b_err = b.communicate(timeout=900)
    # Held or not, the verdict's exit status: the prompt came back with it.
    assert a.returncode == 1, a_out[-2000:] + a_err[-2000:]
    assert b.returncode == 0, b_out[-2000:] + b_err[-2000:]
    assert "STALL" in a_out and f"rig ssh {stall} l1" in a_out and "detached" in a_out
    assert load_result(stall)["verdict"]["verdict"] == "STALL"      # written before the hold
    env = {"RIG_RUN_DIR": str(run_base.parent)}

    r = run_rig("ssh", str(stall), "l1", "grep vfio-intx /proc/interrupts", env=env, timeout=120)
    assert r.returncode == 0 and "vfio-intx" in r.stdout, r.stdout + r.stderr
    r = run_rig("ssh", str(stall), "l1", "exit 7", env=env, timeout=120)
    assert r.returncode == 7, r.stderr                              # the command's own status
    r = run_rig("monitor", str(stall), "l0", "info", "pic", env=env, timeout=120)
    assert r.returncode == 0 and "LSI" in r.stdout, r.stdout + r.stderr    # the stalled source is there
    r = run_rig("monitor", str(stall), "l0", "--qmp", '{"execute": "query-status"}', env=env, timeout=120)
    assert r.returncode == 0 and json.loads(r.stdout)["status"] == "running", r.stdout + r.stderr

    a_pid, b_pid = held_pid(stall), held_pid(passing)
    r = run_rig("stop", str(stall), env=env, timeout=300)
    assert r.returncode == 0 and "torn down" in r.stdout, r.stdout + r.stderr
    assert wait_gone(a_pid, 5) and not (stall / "held.json").exists()
    # The other held chain was not touched: still there, still answering.
    r = run_rig("ssh", str(passing), "l1", "true", env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert wait_gone(b_pid, 300), "the hold did not end at its time limit"
    assert not (passing / "held.json").exists()
    assert "hold ended: its time limit (0.75 min) ran out" in (passing / "hold.log").read_text()
    assert nothing_left(run_base)


class _Stdout:
    """wait_for_line reads a process's stderr: here the held lines come on stdout."""

    def __init__(self, proc):
        self.stderr, self.kill = proc.stdout, proc.kill


def test_ctrl_c_ends_a_hold_with_the_verdicts_status(rig_cache_dir, run_base, short_tmp):
    out = short_tmp / "out"
    proc = start(rig_cache_dir, run_base, *X86_PASS, "--hold", "--out", str(out))
    try:
        wait_for_line(_Stdout(proc), "held: the chain stays up for 30 min", 600)
        assert (out / "held.json").exists()         # written before the lines
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 0, proc.stderr.read()[-2000:]    # PASS, not 130
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)
    assert "hold ended: interrupted" in proc.stderr.read()
    assert not (out / "held.json").exists() and nothing_left(run_base)

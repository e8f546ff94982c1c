"""`rig boot`: L1 reaches SSH on both arches and nothing is left behind, however it ends."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys

import pytest
from conftest import ROOT, qemu_processes_under, run_rig, wait_for_line, wait_gone

from rig.host import rundir as runtime

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("arch, machine", [("x86_64", "q35"), ("ppc64", "pseries"), ("ppc64", "powernv")])
def test_boot_reaches_ssh_and_powers_off(arch, machine, rig_cache_dir, run_base, tmp_path):
    """...and L1 (the kernel under test) reaches nothing on L0: a port listening on L0's
    loopback, which QEMU's user network would otherwise give it as 10.0.2.2; its QEMU runs
    in QEMU's seccomp sandbox."""
    out = tmp_path / "out"
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0)
        port = listener.getsockname()[1]
        r = run_rig("boot", "--arch", arch, "--machine", machine, "--out", str(out),
                    "--command", "uname -m; cat /proc/cmdline; cat /proc/device-tree/compatible 2>/dev/null; "
                    f"nc -w 3 10.0.2.2 {port} </dev/null && echo L0-REACHED || echo L0-UNREACHABLE; true",
                    cache=rig_cache_dir, env={"RIG_RUN_DIR": str(run_base.parent)})
        with pytest.raises(BlockingIOError):
            listener.accept()                   # nobody connected
    assert r.returncode == 0, r.stderr[-2000:]
    assert "L0-UNREACHABLE" in r.stdout and "L0-REACHED" not in r.stdout, r.stdout[-1000:]
    assert " -sandbox on,obsolete=deny," in (out / "l1-qemu.log").read_text().splitlines()[0]
    summary = json.loads((out / "boot.json").read_text())
    assert summary["shutdown"] == "powerdown"     # on PowerNV through the BMC and OPAL
    assert summary["arch"] == arch and summary["machine"] == machine and summary["kernel"].startswith("6.12.")
    if machine == "powernv":      # bare metal under OPAL: the device tree says so
        assert "ibm,powernv" in r.stdout
    assert ("ppc64le" if arch == "ppc64" else "x86_64") in r.stdout
    assert "L1 accelerator:" in r.stdout and "L0 QEMU:" in r.stdout
    assert (out / "l1-console.log").read_text().count("rig-init: ready") == 1
    assert list(run_base.iterdir()) == [] and qemu_processes_under(run_base) == []


def start_boot(rig_cache_dir, run_base, tmp) -> subprocess.Popen:
    """rig boot without --out, with its own TMPDIR: whatever it would leave there shows."""
    cmd = [sys.executable, "-m", "rig", "--cache-dir", str(rig_cache_dir), "boot",
           "--arch", "x86_64", "--command", "sleep 600"]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "RIG_RUN_DIR": str(run_base.parent), "TMPDIR": str(tmp)})


def test_ctrl_c_cleans_up(rig_cache_dir, run_base, tmp_path):
    proc = start_boot(rig_cache_dir, run_base, tmp_path)
    wait_for_line(proc, "L1 SSH ready", 300)
    assert len(qemu_processes_under(run_base)) == 1
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    assert qemu_processes_under(run_base) == [] and list(run_base.iterdir()) == []
    assert list(tmp_path.iterdir()) == []


def test_sigkill_of_the_rig_leaves_nothing_after_the_next_start(rig_cache_dir, run_base, tmp_path):
    proc = start_boot(rig_cache_dir, run_base, tmp_path)
    wait_for_line(proc, "L1 SSH ready", 300)
    (qemu_pid,) = map(int, qemu_processes_under(run_base))
    proc.kill()
    proc.wait(timeout=10)
    assert wait_gone(qemu_pid, 10), "QEMU outlived the SIGKILLed rig"
    assert len(list(run_base.iterdir())) == 1  # the killed rig could not remove its run dir
    runtime.reap_stale(run_base)  # what the next rig start does first
    assert list(run_base.iterdir()) == []
    assert list(tmp_path.iterdir()) == [], "the killed rig left something in its TMPDIR"


@pytest.mark.skipif(not shutil.which("unshare") or os.geteuid() != 0, reason="needs root and unshare(1)")
def test_boot_as_pid_1_of_a_new_pid_namespace(rig_cache_dir, run_base, tmp_path):
    """As `docker run IMAGE rig boot ...` starts it: the rig is PID 1, its children's parent
    pid is 1 from the start; they must run (and still die with it)."""
    r = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-m", "rig",
                        "--cache-dir", str(rig_cache_dir), "boot", "--arch", "x86_64", "--out", str(tmp_path / "out"),
                        "--command", "echo l1-answered"], cwd=ROOT, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "RIG_RUN_DIR": str(run_base.parent)})
    assert r.returncode == 0, r.stderr[-2000:]
    assert "l1-answered" in r.stdout
    assert list(run_base.iterdir()) == [] and qemu_processes_under(run_base) == []

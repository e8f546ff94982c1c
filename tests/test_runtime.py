import os
import select
import subprocess
import sys

import pytest

from rig.host import rundir as runtime

pytestmark = pytest.mark.unit


def _sleeper(marker: str) -> subprocess.Popen:
    # The run directory's path is on the command line, as it is on QEMU's (its sockets).
    # QEMU writes its pidfile itself, after exec; here wait for the exec to have happened.
    p = subprocess.Popen([sys.executable, "-c", "import sys, time; print(1, flush=True); time.sleep(120)",
                          marker], stdout=subprocess.PIPE)
    p.stdout.readline()
    return p


def test_stale_run_dir_and_its_process_are_reaped(tmp_path, monkeypatch):
    monkeypatch.setenv("RIG_RUN_DIR", str(tmp_path))
    base = runtime.run_base()
    stale = base / "boot-999999-abc"
    stale.mkdir(parents=True)
    (stale / "owner").write_text("999999 1\n")  # a rig that no longer exists
    proc = _sleeper(str(stale))
    (stale / "l1.pid").write_text(f"{proc.pid}\n")
    try:
        assert runtime.reap_stale(base) == [stale]
        assert proc.wait(timeout=10) == -9
        assert not stale.exists()
    finally:
        proc.kill()


def test_live_owner_is_left_alone_and_recycled_pids_are_not_killed(short_tmp, monkeypatch):
    monkeypatch.setenv("RIG_RUN_DIR", str(short_tmp))
    with runtime.RunDir("boot") as rd:
        assert runtime.reap_stale() == []
        assert rd.path.exists()
        other = _sleeper("unrelated")  # pidfile names it, but its command line does not
        (rd.path / "x.pid").write_text(f"{other.pid}\n")
        try:
            assert runtime.kill_pidfiles(rd.path) == []
            assert other.poll() is None
        finally:
            other.kill()
    assert not rd.path.exists()


def test_children_die_with_the_rig():
    # A child that sets the death signal, whose parent (a shell) is killed.
    code = ("import os, subprocess, sys, time\n"
            "from rig.host.children import die_with_parent\n"
            "p = subprocess.Popen(['sleep', '120'], preexec_fn=die_with_parent)\n"
            "print(p.pid, flush=True)\n"
            "time.sleep(120)\n")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    pidfd = os.pidfd_open(child)  # readable once the child has exited
    try:
        parent.kill()
        parent.wait(timeout=10)
        ready, _, _ = select.select([pidfd], [], [], 10)
        if not ready:
            os.kill(child, 9)
            pytest.fail("the child outlived its parent by 10 s")
    finally:
        os.close(pidfd)


def test_too_long_run_dir_is_a_user_error(tmp_path, monkeypatch):
    monkeypatch.setenv("RIG_RUN_DIR", str(tmp_path / ("x" * 80)))
    with pytest.raises(runtime.UserError, match="too long for UNIX socket paths"):
        runtime.RunDir("boot")

import os
import select
import shutil
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
            "p = subprocess.Popen(['sleep', '120'], preexec_fn=die_with_parent())\n"
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


@pytest.mark.skipif(not shutil.which("unshare") or os.geteuid() != 0, reason="needs root and unshare(1)")
def test_children_live_when_the_rig_is_pid_1():
    # As `docker run IMAGE rig run` starts it: the rig is PID 1 of a new PID namespace, so
    # its children's parent pid is 1 from the start. They must run, and still die with it.
    code = ("import os, subprocess, sys\n"
            "from rig.host.children import die_with_parent\n"
            "assert os.getpid() == 1, os.getpid()\n"
            "p = subprocess.Popen(['sh', '-c', 'echo alive'], stdout=subprocess.PIPE, text=True,\n"
            "                     preexec_fn=die_with_parent())\n"
            "print(p.communicate(timeout=20)[0].strip(), p.returncode)\n")
    r = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", code],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["alive", "0"], r.stdout


def test_too_long_run_dir_is_a_user_error(tmp_path, monkeypatch):
    monkeypatch.setenv("RIG_RUN_DIR", str(tmp_path / ("x" * 80)))
    with pytest.raises(runtime.UserError, match="too long for UNIX socket paths"):
        runtime.RunDir("boot")


@pytest.mark.parametrize("how", ["open to all", "another user's", "a symlink"])
def test_a_run_dir_base_not_private_to_this_user_is_not_used(short_tmp, monkeypatch, how):
    tmp_path = short_tmp
    # QEMU connects to sockets in it and writes its pidfile there: another user must not
    # be able to plant anything in it.
    monkeypatch.setenv("RIG_RUN_DIR", str(tmp_path))
    first = tmp_path / "intx-rig"
    if how == "a symlink":
        (tmp_path / "elsewhere").mkdir(mode=0o700)
        first.symlink_to(tmp_path / "elsewhere")
    else:
        first.mkdir(mode=0o700)
        if how == "open to all":
            first.chmod(0o1777)
        else:
            os.chown(first, 65534, 65534)
    base = runtime.run_base()
    assert base == tmp_path / f"intx-rig-{os.geteuid()}"
    assert base.stat().st_mode & 0o777 == 0o700 and base.stat().st_uid == os.geteuid()
    with runtime.RunDir("boot") as rd:
        assert rd.path.parent == base


def test_a_private_run_dir_base_is_used_as_it_is(tmp_path, monkeypatch):
    monkeypatch.setenv("RIG_RUN_DIR", str(tmp_path))
    assert runtime.run_base() == tmp_path / "intx-rig"
    assert (tmp_path / "intx-rig").stat().st_mode & 0o777 == 0o700


def test_a_run_dir_of_another_pid_namespace_is_never_reaped(short_tmp, monkeypatch):
    # A container's rig shares /tmp with the host's: its pids mean nothing here, so "no such
    # pid" proves nothing; only a rig of this namespace whose process is gone is reaped.
    monkeypatch.setenv("RIG_RUN_DIR", str(short_tmp))
    base = runtime.run_base()
    theirs = base / "run-999999-abc"
    theirs.mkdir()
    (theirs / "owner").write_text("999999 1 pid:[1]\n")
    ours = base / "run-999998-def"
    ours.mkdir()
    (ours / "owner").write_text(f"999998 1 {os.readlink('/proc/self/ns/pid')}\n")
    assert runtime.reap_stale(base) == [ours]
    assert theirs.exists()


def test_a_run_dir_base_that_cannot_be_made_is_bad_input(monkeypatch):
    monkeypatch.setenv("RIG_RUN_DIR", "/proc/no-such-place")
    with pytest.raises(runtime.UserError, match="cannot be made"):
        runtime.run_base()

"""Run directories: one per rig process, for its sockets and pidfiles, and the guarantee
that nothing a killed rig leaves there survives the next rig start.

A run directory is never visible without its owner: it is made complete (with its
`owner` file: pid and process start time) under a staging name that no reaper takes,
then renamed into place in one step. A reaper takes only what is provably abandoned: a
directory whose owner process is gone (the pid has no process, or one with another start
time), and a staging directory whose creating pid is gone. Many rigs (a matrix, pytest-xdist
workers) start side by side and never remove each other's directories.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import stat
import tempfile
from pathlib import Path
from types import TracebackType

from rig.core.errors import UserError

log = logging.getLogger(__name__)

STAGING = ".new-"


def _own_private_dir(path: Path) -> bool:
    """path is (made if missing) a real directory of this user's that nobody else can
    enter: QEMU connects to the sockets in it and writes its pidfile there, and the reaper
    kills what its pidfiles name."""
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and st.st_mode & 0o077 == 0


def run_base() -> Path:
    """Where run directories go: `intx-rig` in RIG_RUN_DIR (or the temporary directory)
    when it is this user's own and private; else `intx-rig-<uid>` beside it (another user
    made the first, or left it open to all); else bad input."""
    parent = Path(os.environ.get("RIG_RUN_DIR") or tempfile.gettempdir())
    first = parent / "intx-rig"
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"run directory base {parent}: cannot be made ({e.strerror}); set RIG_RUN_DIR to a "
                        "directory of your own") from e
    for base in (first, parent / f"intx-rig-{os.geteuid()}"):
        if _own_private_dir(base):
            if base != first:
                log.info("run directory base %s is not this user's private directory: using %s", first, base)
            return base
    raise UserError(f"run directory base {first}: owned by another user or open to others, and so is "
                    f"{parent / f'intx-rig-{os.geteuid()}'}; set RIG_RUN_DIR to a directory of your own")


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _pid_namespace() -> str:
    """This process's PID namespace ("pid:[4026531836]"): pids are compared only within one."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return "unknown"


# sun_path holds 108 bytes; the longest socket name the rig puts in a run dir is ~20.
MAX_RUN_DIR_LEN = 108 - 1 - 24


class RunDir:
    """A private directory for one rig process's sockets and pidfiles."""

    def __init__(self, label: str = "run"):
        base = run_base()
        if len(str(base)) + len(label) + 20 > MAX_RUN_DIR_LEN:
            raise UserError(f"run directory base {base} is too long for UNIX socket paths: "
                            "set RIG_RUN_DIR (or TMPDIR) to a short directory such as /tmp")
        reap_stale(base)
        pid = os.getpid()
        staging = Path(tempfile.mkdtemp(prefix=f"{STAGING}{label}-{pid}-", dir=base))
        (staging / "owner").write_text(f"{pid} {_start_time(pid)} {_pid_namespace()}\n")
        self.path = base / staging.name.removeprefix(STAGING)
        os.rename(staging, self.path)   # atomic: seen complete, with its owner, or not at all
        log.debug("run directory %s", self.path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def cleanup(self) -> None:
        kill_pidfiles(self.path)
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.cleanup()


def _pid_in_name(d: Path) -> int | None:
    """The creating pid in `<label>-<pid>-<random>` (the label may hold dashes)."""
    parts = d.name.removeprefix(STAGING).rsplit("-", 2)
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


def abandoned(d: Path) -> bool:
    """True only when the process that owns d is provably gone."""
    if d.name.startswith(STAGING):
        pid = _pid_in_name(d)
        return pid is not None and _start_time(pid) is None
    try:
        pid_s, start, *ns = (d / "owner").read_text().split()
        if ns and ns[0] != _pid_namespace():
            return False            # another PID namespace's rig (a container's): its pids mean nothing here
        return _start_time(int(pid_s)) != start
    except FileNotFoundError:
        # Made before run directories were renamed into place, or damaged: its name's pid decides.
        pid = _pid_in_name(d)
        return pid is not None and _start_time(pid) is None
    except (OSError, ValueError):
        return False


def kill_pidfiles(d: Path) -> list[int]:
    """SIGKILL every process named by a *.pid file in d whose command line mentions d."""
    killed = []
    for pidfile in d.glob("*.pid"):
        try:
            pid = int(pidfile.read_text().split()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if str(d).encode() in cmdline:  # never kill a recycled pid
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
    return killed


def reap_stale(base: Path | None = None) -> list[Path]:
    """Remove run directories (and their processes) whose rig process is gone."""
    base = base or run_base()
    reaped = []
    for d in base.glob("*-*-*"):
        if d.is_dir() and abandoned(d):
            log.info("reaping %s: its rig is gone", d)
            kill_pidfiles(d)
            shutil.rmtree(d, ignore_errors=True)
            reaped.append(d)
    return reaped

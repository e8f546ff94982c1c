"""Run directories (sockets, pidfiles) and the guarantee that nothing is left behind.

Every QEMU the rig starts gets PR_SET_PDEATHSIG(SIGKILL), so it dies with the rig even
when the rig is SIGKILLed. What a killed rig cannot remove itself (its run directory,
and a QEMU that somehow survived) is reaped by the next rig start: each run directory
names its owner (pid and start time); a directory whose owner is gone is cleaned up.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import tempfile
from pathlib import Path

from .errors import UserError

PR_SET_PDEATHSIG = 1


def run_base() -> Path:
    return Path(os.environ.get("RIG_RUN_DIR") or tempfile.gettempdir()) / "intx-rig"


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _end_with_parent(sig: int) -> None:
    """In the child: receive sig when the parent dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
    # The parent may have died between fork and prctl: then we are orphaned already.
    if os.getppid() == 1:
        os._exit(1)


def die_with_parent() -> None:
    """preexec_fn for child processes: SIGKILL when the rig dies, however it dies."""
    _end_with_parent(signal.SIGKILL)


def own_session_ends_with_parent() -> None:
    """preexec_fn for a child rig (rig matrix's runs): in a session of its own, so a
    terminal's Ctrl-C reaches only the parent, which passes one SIGINT on; and SIGTERM
    (which the rig handles like Ctrl-C: it cleans up) if the parent dies."""
    os.setsid()
    _end_with_parent(signal.SIGTERM)


# sun_path holds 108 bytes; the longest socket name the rig puts in a run dir is ~20.
MAX_RUN_DIR_LEN = 108 - 1 - 24


class RunDir:
    """A private directory for one rig process's sockets and pidfiles."""

    def __init__(self, label: str = "run"):
        base = run_base()
        if len(str(base)) + len(label) + 20 > MAX_RUN_DIR_LEN:
            raise UserError(f"run directory base {base} is too long for UNIX socket paths: "
                            "set RIG_RUN_DIR (or TMPDIR) to a short directory such as /tmp")
        base.mkdir(parents=True, exist_ok=True, mode=0o700)
        reap_stale(base)
        self.path = Path(tempfile.mkdtemp(prefix=f"{label}-{os.getpid()}-", dir=base))
        (self.path / "owner").write_text(f"{os.getpid()} {_start_time(os.getpid())}\n")

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def cleanup(self) -> None:
        kill_pidfiles(self.path)
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> "RunDir":
        return self

    def __exit__(self, *exc) -> None:
        self.cleanup()


def _owner_alive(d: Path) -> bool:
    try:
        pid_s, start = (d / "owner").read_text().split()
        return _start_time(int(pid_s)) == start
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
        if d.is_dir() and not _owner_alive(d):
            kill_pidfiles(d)
            shutil.rmtree(d, ignore_errors=True)
            reaped.append(d)
    return reaped

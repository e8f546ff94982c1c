"""Child processes that never outlive the rig.

Every QEMU, device model and `rig run` the rig starts gets a parent-death signal, so it
dies (or cleans up) with the rig even when the rig is SIGKILLed.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
from collections.abc import Callable
from typing import Any

PR_SET_PDEATHSIG = 1


def _end_with_parent(sig: int, parent: int) -> None:
    """In the child: receive sig when the parent dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
    # The parent may have died between fork and prctl: then we were re-parented already.
    # Compared with the parent's own pid, not with 1: the rig may itself be PID 1 (a
    # container's first process), whose children all have a parent pid of 1.
    if os.getppid() != parent:
        os._exit(1)


def die_with_parent() -> Callable[[], None]:
    """A preexec_fn for a child process (call it in the parent: it records the parent's
    pid): SIGKILL when the rig dies, however it dies."""
    parent = os.getpid()
    return lambda: _end_with_parent(signal.SIGKILL, parent)


def own_session_ends_with_parent() -> Callable[[], None]:
    """A preexec_fn for a child rig (rig matrix's runs): in a session of its own, so a
    terminal's Ctrl-C reaches only the parent, which passes one SIGINT on; and SIGTERM
    (which the rig handles like Ctrl-C: it cleans up) if the parent dies."""
    parent = os.getpid()

    def preexec() -> None:
        os.setsid()
        _end_with_parent(signal.SIGTERM, parent)
    return preexec


def wait_or_kill(proc: subprocess.Popen[Any], timeout: float) -> bool:
    """Wait for a child asked to end; SIGKILL it (and reap it) if it has not within
    timeout. True if it ended by itself."""
    try:
        proc.wait(timeout=timeout)
        return True
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()         # SIGKILL cannot be refused: only the reaping is left
        return False

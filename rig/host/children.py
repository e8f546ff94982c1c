"""Child processes that never outlive the rig.

Every QEMU, device model and `rig run` the rig starts gets a parent-death signal, so it
dies (or cleans up) with the rig even when the rig is SIGKILLed.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
from typing import Any

PR_SET_PDEATHSIG = 1


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

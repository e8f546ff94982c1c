"""Ctrl-C, SIGTERM and SIGHUP unwind the rig as a KeyboardInterrupt, and surely so.

Python raises a signal's exception in whatever the main thread runs at that moment. When
that is an object's finalizer (`__del__`, which the garbage collector runs anywhere), Python
prints "Exception ignored in ..." and goes on as if no signal had come: measured, a
`rig run` interrupted while it restored L1 ran on for 64 s and ended ERROR, and `rig
matrix` waited past its 120 s for such a run. The hook below sees the swallowed exception
and sends the signal again, for code that can unwind.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType
from typing import Any

from rig.core import timeouts

log = logging.getLogger(__name__)


class Terminated(KeyboardInterrupt):
    """SIGTERM/SIGHUP, handled like Ctrl-C: unwind and clean up."""


class _State:
    unwound = False      # the main thread caught the interrupt: it is cleaning up or done


def _on_terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


def _redeliver(unraisable: Any) -> None:
    """sys.unraisablehook: an interrupt swallowed by a finalizer is raised again."""
    exc = unraisable.exc_value
    if isinstance(exc, KeyboardInterrupt) and not _State.unwound:
        log.debug("an interrupt landed in %r, which swallows it: sending it again", unraisable.object)
        # Not from here: raised at once, inside this hook, it would be swallowed again.
        # From a thread, once the hook has returned, and to the main thread itself, so
        # that a system call it waits in returns to run the handler.
        again = threading.Timer(timeouts.INTERRUPT_AGAIN_S, signal.pthread_kill,
                                (threading.main_thread().ident,
                                 signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT))
        again.daemon = True
        again.start()
        return
    sys.__unraisablehook__(unraisable)


def install() -> None:
    """For the main thread, at start: SIGINT raises KeyboardInterrupt even when the rig was
    started with it ignored (a script's background job, a pytest-xdist worker, which Python
    would leave ignored); SIGTERM and SIGHUP raise Terminated."""
    _State.unwound = False
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _on_terminate)
    signal.signal(signal.SIGHUP, _on_terminate)
    sys.unraisablehook = _redeliver


def unwound() -> None:
    """The main thread caught the interrupt: one swallowed later (a second Ctrl-C during the
    cleanup) is not raised again."""
    _State.unwound = True

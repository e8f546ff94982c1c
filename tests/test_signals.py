"""An interrupt that lands in a finalizer, which Python swallows, still unwinds the rig
(rig.host.signals). Real signals, in a child Python of its own."""

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.unit

CHILD = textwrap.dedent("""
    import os, signal, sys, threading, time
    from rig.host import signals
    signals.install()
    if sys.argv[2] == "unwound":
        signals.unwound()
    sig = getattr(signal, sys.argv[1])
    started = threading.Event()

    class Busy:
        def __del__(self):      # the signal comes while this runs
            started.set()
            t = time.monotonic()
            while time.monotonic() - t < 2:
                pass

    threading.Thread(target=lambda: started.wait(10) and os.kill(os.getpid(), sig)).start()
    try:
        b = Busy()
        del b
        t = time.monotonic()
        while time.monotonic() - t < 5:
            pass
        print("ran on")
    except KeyboardInterrupt as e:
        print("unwound by", type(e).__name__)
""")


def child(sig: str, state: str = "running") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", CHILD, sig, state], capture_output=True, text=True,
                          timeout=30)


@pytest.mark.parametrize("sig,exc", [("SIGINT", "KeyboardInterrupt"), ("SIGTERM", "Terminated")])
def test_an_interrupt_swallowed_by_a_finalizer_is_raised_again(sig, exc):
    r = child(sig)
    assert r.stdout.strip() == f"unwound by {exc}", r.stderr
    assert "Exception ignored" not in r.stderr


def test_once_unwound_a_swallowed_interrupt_is_left_alone():
    r = child("SIGINT", "unwound")
    assert r.stdout.strip() == "ran on", r.stderr
    assert "Exception ignored" in r.stderr

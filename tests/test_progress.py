"""Progress lines from several threads (the matrix runs cells side by side) stay whole."""

import io
import threading
import time

import pytest

from rig.core.progress import Progress

pytestmark = pytest.mark.unit


class SlowStream(io.StringIO):
    """Gives the other threads a turn inside every write, as a pipe to a busy reader does."""

    def write(self, s):
        n = super().write(s)
        time.sleep(0.0001)
        return n


def test_lines_from_threads_do_not_interleave():
    out = SlowStream()
    p = Progress(stream=out)

    def emit(name):
        for i in range(50):
            p.step(f"{name} {i}")

    threads = [threading.Thread(target=emit, args=(f"t{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = out.getvalue().splitlines()
    assert len(lines) == 200
    assert all(line.startswith("[") and line.count("[") == 1 for line in lines)


def test_quiet_prints_nothing():
    out = io.StringIO()
    Progress(stream=out, quiet=True).note("x")
    assert out.getvalue() == ""

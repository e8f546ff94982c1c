"""A run's pictures, drawn beside the teardown: the timeline (timeline.png, .svg) and the
report page that shows it inline. matplotlib's 0.5-0.7 s then overlap L1's quit instead of
following it; whoever reads the pictures (a hold, the process's exit) joins first.

Drawn in a thread: the figure is an Agg canvas of the thread's own (never pyplot, whose
figure registry is shared), and the main thread meanwhile mostly waits on QEMU and SSH.
"""

from __future__ import annotations

import threading
from pathlib import Path

from rig.reports.html import write_run_report
from rig.reports.result import RunResult


class Drawing:
    """The pictures of one result, being drawn; join() waits for them and raises what
    drawing raised."""

    def __init__(self, out: Path, result: RunResult, stall_at: float | None):
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._draw, args=(out, result, stall_at), name="drawing")
        self._thread.start()

    def _draw(self, out: Path, r: RunResult, stall_at: float | None) -> None:
        try:
            # matplotlib only for a run that draws: every other command (bad input, --help,
            # `rig ssh`) starts without it (about half of the CLI's import time).
            from rig.reports.timeline import write_timeline
            write_timeline(out, r.samples, f"{r.name}: {r.verdict.outcome}", stall_at, r.interrupt_path)
            write_run_report(out, r)
        except BaseException as e:  # noqa: BLE001 - handed to the thread that joins
            self._error = e

    def join(self) -> None:
        self._thread.join()
        if self._error is not None:
            raise self._error

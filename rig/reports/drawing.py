"""A run's pictures, drawn beside the teardown: the timeline (timeline.png, .svg) and the
report page that shows it inline. matplotlib's 0.5-0.7 s then overlap L1's quit instead of
following it; whoever reads the pictures (a hold, the process's exit) joins first.

Drawn in a thread: the figure is an Agg canvas of the thread's own (never pyplot, whose
figure registry is shared), and the main thread meanwhile mostly waits on QEMU and SSH.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from types import TracebackType

from rig.core.logs import LOG_NAME
from rig.reports.html import write_run_report
from rig.reports.result import RunResult

log = logging.getLogger(__name__)


class Drawing:
    """A run's pictures: start() draws them in a thread, join() waits and raises what drawing
    raised. As a context, it joins on the way out however the block ends; a picture that could
    not be drawn is then said and logged, and the verdict, already written, stands."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self, out: Path, r: RunResult, stall_at: float | None) -> None:
        self._thread = threading.Thread(target=self._draw, args=(out, r, stall_at), name="drawing")
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

    def wait(self) -> None:
        """Until the pictures are drawn or failed (a failure is said when the context ends)."""
        if self._thread is not None:
            self._thread.join()

    def join(self) -> None:
        self.wait()
        if self._error is not None:
            raise self._error

    def __enter__(self) -> Drawing:
        return self

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self.join()
        except Exception as e:  # noqa: BLE001 - the verdict and its files are already written
            log.error("the timeline was not drawn: %s", e, exc_info=True)
            print(f"  the timeline was not drawn: {type(e).__name__}: {e} (traceback in {LOG_NAME})")

"""Logging: every module logs to `logging.getLogger(__name__)`; this sets where it goes.

The terminal gets the progress lines (rig.core.progress) and, with --debug, every record.
Each output directory gets `rig.log` with every record at DEBUG, timestamped, so a failure
a user reports comes with its trail (commands over SSH, QMP commands, waits, decisions).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

ROOT_LOGGER = "rig"
FORMAT = "%(asctime)s.%(msecs)03d %(threadName)s %(name)s %(levelname)s: %(message)s"
DATEFMT = "%H:%M:%S"
LOG_NAME = "rig.log"


def configure(debug: bool = False) -> None:
    """Once per process: records go nowhere but the output directory's rig.log unless
    --debug also sends them to stderr."""
    root = logging.getLogger(ROOT_LOGGER)
    root.setLevel(logging.DEBUG)
    root.propagate = False
    if not root.handlers:
        # Without any handler, logging's last resort prints warnings to stderr: the
        # terminal gets the one-line messages, rig.log the records.
        root.addHandler(logging.NullHandler())
    for h in [h for h in root.handlers if getattr(h, "_rig_stderr", False)]:
        root.removeHandler(h)
    # asyncio runs only inside qemu.qmp's synchronous wrapper. A Ctrl-C that lands in one of
    # its waits leaves a task behind, whose "Task exception was never retrieved" (with two
    # tracebacks) would follow "rig: interrupted; cleaned up" on the terminal as Python exits.
    aio = logging.getLogger("asyncio")
    aio.propagate = debug
    if not aio.handlers:
        aio.addHandler(logging.NullHandler())
    if debug:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter(FORMAT, DATEFMT))
        h._rig_stderr = True  # type: ignore[attr-defined]
        root.addHandler(h)


class LogFile:
    """rig.log in an output directory, for as long as the run lasts (a context manager)."""

    def __init__(self, directory: Path):
        self.path = directory / LOG_NAME
        self._handler = logging.FileHandler(self.path, mode="a", encoding="utf-8")
        self._handler.setLevel(logging.DEBUG)
        self._handler.setFormatter(logging.Formatter(FORMAT, DATEFMT))

    def __enter__(self) -> LogFile:
        root = logging.getLogger(ROOT_LOGGER)
        if root.level == logging.NOTSET:    # used without configure() (the pytest plugin)
            root.setLevel(logging.DEBUG)
        root.addHandler(self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger(ROOT_LOGGER).removeHandler(self._handler)
        self._handler.close()

"""Progress for long work (downloads, image builds, boots, waits), on stderr.

Lines, not a redrawn bar: they stay readable in CI logs and when piped.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import TextIO

log = logging.getLogger(__name__)


class Progress:
    def __init__(self, stream: TextIO | None = None, quiet: bool = False):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.t0 = time.monotonic()
        self._last_fraction = 0.0
        self._lock = threading.Lock()

    def _emit(self, text: str) -> None:
        log.info("%s", text.strip())     # rig.log has every progress line, -q or not
        if not self.quiet:
            # One write per line: print() writes the text and the newline apart, and the
            # matrix's runner threads would interleave them.
            with self._lock:
                self.stream.write(f"[{time.monotonic() - self.t0:7.1f}s] {text}\n")
                self.stream.flush()

    def step(self, text: str) -> None:
        self._emit(text)

    def note(self, text: str) -> None:
        self._emit(f"  {text}")

    def fraction(self, done: float, total: float, what: str = "") -> None:
        # At most one line per 10% (and the last), so a 100-package download stays short.
        frac = done / total if total else 1.0
        if frac >= 1.0 or frac - self._last_fraction >= 0.1:
            self._last_fraction = 0.0 if frac >= 1.0 else frac
            self._emit(f"  {frac * 100:5.1f}% {what}")

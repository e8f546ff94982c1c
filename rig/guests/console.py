"""A guest's serial console: the rig accepts QEMU's chardev connection and drives it with
pexpect.

A pump thread keeps reading whenever nobody is expecting: a console nobody reads
back-pressures the guest's serial port and slows the boot. Everything read stays in
pexpect's buffer (bounded), so expect() after a quiet period still sees the line.
"""

from __future__ import annotations

import re
import select
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import pexpect
import pexpect.fdpexpect

from rig.core import timeouts
from rig.core.errors import InfraError

MAX_BUFFER = 1 << 20


class ConsoleTimeout(InfraError):
    """The expected console output did not come in time (the guest may still be alive)."""


class Console:
    def __init__(self, listener: socket.socket | None, name: str):
        self.listener = listener
        self.name = name
        self.sock: socket.socket | None = None
        self.spawn: pexpect.fdpexpect.fdspawn | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pump: threading.Thread | None = None
        self._logfile: TextIO | None = None

    @classmethod
    def over(cls, sock: socket.socket, name: str, log_path: Path) -> Console:
        """A console on an already connected socket (L2's, relayed from L1 over SSH);
        everything read is also written to log_path."""
        c = cls(None, name)
        c._attach(sock, log_path)
        return c

    @classmethod
    def listen(cls, path: Path, name: str) -> Console:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(str(path))
        s.listen(1)
        return cls(s, name)

    def accept(self, timeout: float) -> None:
        if self.listener is None:
            raise InfraError(f"{self.name}: this console was attached to a socket, it does not listen")
        self.listener.settimeout(timeout)
        try:
            self.sock, _ = self.listener.accept()
        except TimeoutError:
            raise InfraError(f"{self.name}: QEMU did not connect its console within {timeout:.0f} s") from None
        self._attach(self.sock, None)

    def _attach(self, sock: socket.socket, log_path: Path | None) -> None:
        self.sock = sock
        self.spawn = pexpect.fdpexpect.fdspawn(sock.fileno(), encoding="utf-8",
                                               codec_errors="replace", maxread=65536)
        if log_path:
            self._logfile = open(log_path, "w")
        self.spawn.logfile_read = _Recent(self._logfile)
        self._pump = threading.Thread(target=self._drain, name=f"console-{self.name}", daemon=True)
        self._pump.start()

    def _attached(self) -> pexpect.fdpexpect.fdspawn:
        if self.spawn is None:
            raise InfraError(f"{self.name}: the console is not connected")
        return self.spawn

    def _drain(self) -> None:
        spawn, sock = self._attached(), self.sock
        assert sock is not None       # _attach set both
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([sock], [], [], timeouts.CONSOLE_POLL_S)
            except (OSError, ValueError):
                return
            if not ready:
                continue
            with self._lock:
                try:
                    data = spawn.read_nonblocking(65536, timeout=0)
                except pexpect.TIMEOUT:
                    continue
                except (pexpect.EOF, OSError, ValueError):
                    return
                buf = spawn.buffer + data
                spawn.buffer = buf[-MAX_BUFFER:]

    def expect(self, pattern: str, timeout: float, what: str) -> re.Match[str]:
        """Wait for a regex on the console; InfraError naming `what` if it does not come."""
        with self._lock:
            spawn = self._attached()
            try:
                spawn.expect(pattern, timeout=timeout)
            except pexpect.TIMEOUT:
                raise ConsoleTimeout(f"{self.name}: {what} did not appear on the console within "
                                 f"{timeout:.0f} s") from None
            except pexpect.EOF:
                raise InfraError(f"{self.name}: console closed (QEMU exited) before {what}") from None
            match: re.Match[str] = spawn.match
            return match

    def expect_while(self, pattern: str, timeout: float, what: str,
                     healthy: Callable[[], None]) -> re.Match[str]:
        """expect(), but calling healthy() (which raises if the guest is gone) every few
        seconds, so a dead guest fails now rather than at the timeout."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                return self.expect(pattern, min(left, timeouts.CONSOLE_HEALTH_EVERY_S), what)
            except ConsoleTimeout:
                healthy()
                if left <= timeouts.CONSOLE_HEALTH_EVERY_S:
                    raise ConsoleTimeout(f"{self.name}: {what} did not appear on the console "
                                         f"within {timeout:.0f} s") from None

    def seen(self, pattern: str) -> re.Match[str] | None:
        """pattern in the last of what the console printed, read by expect or the pump,
        without consuming it (a line that marks an end: it is among the last)."""
        recent = self.spawn.logfile_read if self.spawn else None
        return re.search(pattern, recent.text) if isinstance(recent, _Recent) else None

    def sendline(self, text: str) -> None:
        with self._lock:
            self._attached().sendline(text)

    def run(self, command: str, timeout: float) -> str:
        """Run a command at the console shell (for when SSH is not up) and return its
        output. The markers are split by quotes in the command, so the shell's echo of the
        command line (wrapped at the terminal width, too) can never match them."""
        self.sendline(f"echo RIG-BEGIN''-OF-OUTPUT; {command}; echo RIG-END''-OF-OUTPUT")
        m = self.expect(r"(?s)RIG-BEGIN-OF-OUTPUT\r?\n(.*?)RIG-END-OF-OUTPUT", timeout,
                        f"output of {command!r}")
        return str(m.group(1)).replace("\r", "")

    def close(self) -> None:
        self._stop.set()
        if self._pump:
            self._pump.join(timeout=timeouts.THREAD_JOIN_S)
        for s in (self.sock, self.listener):
            if s:
                s.close()
        if self._logfile:
            self._logfile.close()


class _Recent:
    """pexpect's logfile_read: everything read goes to the log file (if any), and the last
    RECENT_CHARS of it are kept for seen()."""

    RECENT_CHARS = 8192

    def __init__(self, log: TextIO | None):
        self.log = log
        self.text = ""

    def write(self, data: str) -> None:
        self.text = (self.text + data)[-self.RECENT_CHARS:]
        if self.log:
            self.log.write(data)

    def flush(self) -> None:
        if self.log:
            self.log.flush()

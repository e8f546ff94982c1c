"""QemuMachine: one object owns one QEMU process, its QMP socket, console and logs.

Modelled on QEMU's python/qemu/machine: the rig listens on the QMP and console sockets
before QEMU starts (so there is no race on a socket file appearing), QEMU connects to
them, and shutdown is QMP system_powerdown, then quit, then SIGKILL, each with a timeout.
Whatever happens, close() leaves no process, socket or file behind but the logs.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any, TextIO

from qemu.qmp import QMPError
from qemu.qmp.legacy import QEMUMonitorProtocol

from rig.core import timeouts
from rig.core.errors import GuestDied, InfraError, LaunchFailed, QmpTimeout
from rig.core.json_object import JsonObject
from rig.core.progress import Progress
from rig.guests.console import Console, ConsoleTimeout
from rig.host.children import die_with_parent
from rig.host.qemu import SANDBOX, QemuBinary, option_value
from rig.host.rundir import RunDir

log = logging.getLogger(__name__)


def log_command(name: str, argv: list[str]) -> None:
    log.info("%s: starting %s", name, " ".join(argv))


class QemuMachine:
    def __init__(self, name: str, qemu: QemuBinary, args: list[str], run_dir: RunDir,
                 log_dir: Path, progress: Progress | None = None):
        self.name = name
        self.qemu = qemu
        self.args = args
        self.run_dir = run_dir
        self.log_dir = log_dir
        self.progress = progress or Progress()
        self.qmp: QEMUMonitorProtocol | None = None
        self.console: Console | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: TextIO | None = None
        self.started_at = 0.0

    @property
    def console_log(self) -> Path:
        return self.log_dir / f"{self.name}-console.log"

    @property
    def qemu_log(self) -> Path:
        return self.log_dir / f"{self.name}-qemu.log"

    def command_line(self, args: list[str] | None = None) -> list[str]:
        """QEMU's whole command line, with this machine's arguments or the given ones."""
        qmp_sock = self.run_dir / f"{self.name}-qmp.sock"
        con_sock = self.run_dir / f"{self.name}-console.sock"
        return self.qemu.argv(
            "-name", self.name, "-nodefaults", "-no-user-config", "-display", "none",
            "-no-reboot",  # a guest panic (panic=-1) ends QEMU instead of looping
            "-chardev", f"socket,id=qmp,path={option_value(qmp_sock)}",
            "-mon", "chardev=qmp,mode=control",
            "-chardev", f"socket,id=con0,path={option_value(con_sock)},logfile={option_value(self.console_log)}",
            "-serial", "chardev:con0",
            "-pidfile", str(self.run_dir / f"{self.name}.pid"),
            # Wall-clock times on every message and trace line: the interrupt-path
            # timeline puts QEMU's trace events next to L1's and the rig's.
            "-msg", "timestamp=on",
            *(("-sandbox", SANDBOX) if self.qemu.has_sandbox else ()),
            *(self.args if args is None else args))

    def launch(self, connect_timeout: float = timeouts.QEMU_CONNECT_S) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        argv = self.command_line()
        self.qmp = QEMUMonitorProtocol(str(self.run_dir / f"{self.name}-qmp.sock"), server=True)
        self.console = Console.listen(self.run_dir / f"{self.name}-console.sock", self.name)
        self._log = log = open(self.qemu_log, "w")
        log.write(" ".join(argv) + "\n\n")
        log.flush()
        log_command(self.name, argv)
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, env={**os.environ, **self.qemu.env},
                                     preexec_fn=die_with_parent())
        try:
            self.qmp.accept(timeout=connect_timeout)
        except (QMPError, OSError, TimeoutError) as e:
            status = self.proc.poll()
            why = (f"QEMU exited at once with status {status}" if status is not None else
                   f"QEMU did not connect to QMP within {connect_timeout:.0f} s ({type(e).__name__})")
            raise LaunchFailed(f"{self.name}: {why}: {self._tail()}", argv, self._tail(20)) from e
        # Every QMP command from here on is bounded: a wedged QEMU must not hang the rig.
        self.qmp.settimeout(timeouts.QMP_COMMAND_S)
        self.console.accept(timeout=connect_timeout)

    def _tail(self, lines: int = 3) -> str:
        try:
            text = self.qemu_log.read_text(errors="replace").strip().splitlines()[1:]
        except OSError:
            return ""
        return " | ".join(text[-lines:]) or (f"exit status {self.proc.poll()}" if self.proc else "")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self) -> None:
        if not self.alive():
            status = self.proc.poll() if self.proc else "never started"
            raise GuestDied(f"{self.name}: QEMU exited (status {status}): {self._tail()}",
                            self.command_line(), self._tail(20))

    # Run states in which a guest will never print another line.
    DEAD_STATES = ("internal-error", "guest-panicked", "shutdown", "io-error")

    def check_running(self) -> None:
        """InfraError if QEMU exited or the guest is stopped for good (e.g. a KVM
        emulation failure, a panic)."""
        self.check_alive()
        status = self.cmd("query-status").get("status")
        if status in self.DEAD_STATES:
            raise GuestDied(f"{self.name}: guest is in state {status!r}: {self._tail()}",
                            self.command_line(), self._tail(20))

    def run_state(self) -> str:
        """QEMU's run state of its guest (QMP query-status): "running", "paused",
        "postmigrate", ..."""
        return str(self.cmd("query-status").get("status"))

    def expect_console(self, pattern: str, timeout: float, what: str) -> re.Match[str]:
        """Wait for a console line; fail at once if the guest can no longer print one."""
        if self.console is None:
            raise InfraError(f"{self.name}: QEMU was not launched: no console")
        try:
            return self.console.expect_while(pattern, timeout, what, self.check_running)
        except ConsoleTimeout as e:
            raise InfraError(f"{e} (console log: {self.console_log})") from e

    def _monitor(self) -> QEMUMonitorProtocol:
        if self.qmp is None:
            raise InfraError(f"{self.name}: QEMU was not launched: no QMP")
        return self.qmp

    def hmp(self, line: str) -> str:
        """One human-monitor command (`info pic`), its text."""
        return str(self.cmd("human-monitor-command", **{"command-line": line}))

    def cmd(self, command: str, **args: object) -> Any:
        """One QMP command, bounded by QMP_COMMAND_S; InfraError naming it if it fails."""
        log.debug("%s: QMP %s %s", self.name, command, args or "")
        try:
            return self._monitor().cmd(command, **args)
        except TimeoutError as e:
            raise QmpTimeout(f"{self.name}: QMP {command} had no answer in {timeouts.QMP_COMMAND_S:.0f} s",
                             self.command_line(), self._tail(20)) from e
        except (QMPError, OSError) as e:
            raise InfraError(f"{self.name}: QMP {command} failed: {e}") from e

    def wait_event(self, name: str, timeout: float) -> JsonObject | None:
        """The next QMP event called `name`, or None after timeout."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                ev = self._monitor().pull_event(wait=left)
            except (QMPError, OSError, TimeoutError, EOFError):
                return None
            if ev and ev.get("event") == name:
                return ev
        return None

    def shutdown(self, timeout: float = timeouts.L1_POWERDOWN_S, powerdown: bool = True) -> str:
        """Power the guest off through QMP (or, powerdown=False, go straight to quit);
        escalate to quit, then SIGKILL. Says how it ended."""
        if not self.alive():
            return "already exited"
        how = "powerdown" if powerdown else "quit"
        try:
            if powerdown:
                self._monitor().cmd("system_powerdown")
            if not powerdown or self.wait_event("SHUTDOWN", timeout) is None \
                    or not self._wait_exit(timeouts.QEMU_EXIT_S):
                how = "quit"
                self._monitor().cmd("quit")
                if not self._wait_exit(timeouts.QEMU_EXIT_S):
                    how = "kill"
        except (QMPError, OSError, EOFError, InfraError) as e:
            log.warning("%s: powering off over QMP failed (%s): killing it", self.name, e)
            how = "quit failed, kill"
        if self.proc and self.alive():
            self.proc.kill()
            self._wait_exit(timeouts.QEMU_EXIT_S)
        return how

    def exits_within(self, timeout: float) -> bool:
        """True if QEMU has exited, or does within timeout (it is not asked to)."""
        return self.proc is not None and self._wait_exit(timeout)

    def _wait_exit(self, timeout: float) -> bool:
        if self.proc is None:
            return True
        try:
            self.proc.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def close(self) -> None:
        """Idempotent teardown: process, QMP, console, sockets."""
        if self.proc and self.alive():
            self.proc.kill()
            self._wait_exit(timeouts.QEMU_EXIT_S)
        if self.qmp:
            try:
                self.qmp.close()
            except Exception:  # noqa: BLE001 - teardown must go on whatever QMP's state
                pass
            self.qmp = None
        if self.console:
            self.console.close()
            self.console = None
        if self._log:
            self._log.close()
            self._log = None
        for suffix in ("-qmp.sock", "-console.sock", ".pid"):
            (self.run_dir / f"{self.name}{suffix}").unlink(missing_ok=True)

    def __enter__(self) -> QemuMachine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

"""`rig run --hold`: after the verdict the chain stays up for a look inside.

The held rig writes OUT/held.json (how to reach each guest and its own control socket) and
then waits for `rig stop`, its time limit, or Ctrl-C/SIGTERM/SIGHUP; either way the chain is
torn down as at the end of every run, and held.json goes. `rig ssh` reaches the guests
directly (L1's forwarded port, L2 through L1) with the run's keys; `rig monitor` and `rig
stop` talk to the held rig over its control socket, one JSON line each way, because only
the held rig holds the QEMUs' monitors (L0's QMP is a socket QEMU connected to, L1's QEMU's
QMP is reached through the rig's SSH connection to L1).
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rig.chain.chain import Chain
from rig.core import timeouts, untrusted
from rig.core.errors import InfraError, UserError
from rig.core.kinds import Outcome
from rig.core.progress import Progress
from rig.guests.l2 import SSH_PORT as L2_SSH_PORT
from rig.host.rundir import run_base

log = logging.getLogger(__name__)

RECORD = "held.json"
MAX_RECORD_BYTES = 64 << 10
HOST_KEY = re.compile(r"ssh-ed25519 [A-Za-z0-9+/]+=*( [!-~]{1,100})?")  # the key, and its comment
KNOWN_HOSTS = "held-known_hosts"       # for OpenSSH's ssh: the guests' baked-in host key
CONTROL = "hold.sock"                  # in the run directory (short: a UNIX socket path)
MONITORS = ("l0", "l1")                # the QEMU in L0 (runs L1), the QEMU in L1 (runs L2)
GUESTS = ("l1", "l2")
HELD_LINE = "held: the chain stays up"


@dataclass(frozen=True)
class HoldRequest:
    """One line a client (rig monitor, rig stop) sends the held rig, as JSON."""

    op: str                       # "stop" or "monitor"
    target: str = ""              # monitor: one of MONITORS
    hmp: str = ""                 # monitor: an HMP command line, or
    qmp: str = ""                 # a QMP command
    arguments: dict[str, object] = field(default_factory=dict)    # and its arguments

    def to_line(self) -> bytes:
        fields = {k: v for k, v in asdict(self).items() if v}
        return json.dumps(fields).encode() + b"\n"

    @classmethod
    def from_line(cls, line: str | bytes) -> HoldRequest:
        """A request as read from the socket; ValueError names what is wrong with it."""
        d = json.loads(line)
        if not isinstance(d, dict) or set(d) - {"op", "target", "hmp", "qmp", "arguments"}:
            raise ValueError(f"not a request: {line[:200]!r}")
        if not all(isinstance(d.get(k, ""), str) for k in ("op", "target", "hmp", "qmp")) or \
                not isinstance(d.get("arguments", {}), dict):
            raise ValueError(f"a field of the wrong type: {line[:200]!r}")
        return cls(**d)


@dataclass(frozen=True)
class HoldAnswer:
    """The held rig's answer: the monitor's output, or why there is none."""

    ok: bool
    output: object = None
    error: str = ""

    def to_line(self) -> bytes:
        d: dict[str, object] = {"ok": self.ok}
        if not self.ok:
            d["error"] = self.error
        elif self.output is not None:
            d["output"] = self.output
        return json.dumps(d).encode() + b"\n"

    @classmethod
    def from_line(cls, line: str | bytes) -> HoldAnswer:
        d = json.loads(line)
        return cls(bool(d.get("ok")), d.get("output"), str(d.get("error", "")))


@dataclass(frozen=True)
class HoldRecord:
    """What OUT/held.json says: enough for another rig process to get in."""

    pid: int
    until: float                  # time.time() at which the hold ends by itself
    control: str                  # the held rig's control socket
    verdict: str
    l1_port: int                  # L1's sshd, forwarded to 127.0.0.1 on L0
    l2_port: int | None           # L2's sshd as seen from L1 (None: fast mode, no L2)
    client_key: str
    host_key: str                 # the guests' host key line (ssh-ed25519 ...)

    def write(self, out: Path) -> None:
        tmp = out / f".{RECORD}.{os.getpid()}"
        tmp.write_text(json.dumps(asdict(self), indent=1) + "\n")
        os.replace(tmp, out / RECORD)      # a reader sees all of it or none

    @classmethod
    def load(cls, run_dir: Path) -> HoldRecord:
        """The record of a chain held now, checked as a stranger's (a planted held.json must
        not make `rig ssh` read another key or `rig stop` talk to another socket); one-line
        bad input otherwise."""
        if not run_dir.is_dir():
            raise UserError(f"{run_dir}: no such results directory; give the directory `rig run --hold` printed")
        path = run_dir / RECORD
        if not os.path.lexists(path):
            raise UserError(f"{run_dir}: its chain is not held (no {RECORD}): run it with `rig run --hold`")
        data = untrusted.read_json(path, MAX_RECORD_BYTES, "not a record of a chain held on this machine")
        try:
            record = cls._checked(data)
        except UserError as e:
            raise UserError(f"{path}: {e}; not a record of a chain held on this machine by you") from None
        if not _process_exists(record.pid):
            raise UserError(f"{run_dir}: its chain is not held any more (rig process {record.pid} is gone)")
        record._check_owner()
        return record

    @classmethod
    def _checked(cls, data: object) -> HoldRecord:
        d = untrusted.expect(data, dict, "the record")
        if set(d) != set(cls.__dataclass_fields__):
            raise UserError(f"keys {sorted(set(d) ^ set(cls.__dataclass_fields__))} unknown or missing")
        for key, types in (("pid", int), ("until", (int, float)), ("control", str), ("verdict", str),
                           ("l1_port", int), ("l2_port", (int, type(None))), ("client_key", str), ("host_key", str)):
            untrusted.expect(d[key], types, key)
        if d["verdict"] not in tuple(Outcome):
            raise UserError(f"verdict: {d['verdict'][:40]!r} is none of {', '.join(Outcome)}")
        if not all(1 <= p <= 65535 for p in (d["l1_port"], d["l2_port"] or 1)) or d["pid"] <= 1:
            raise UserError("a port or the pid is out of range")
        if not HOST_KEY.fullmatch(d["host_key"]):
            raise UserError(f"host_key: {d['host_key'][:40]!r} is not an ssh-ed25519 public key")
        untrusted.absolute_path(d["control"], "control")
        untrusted.absolute_path(d["client_key"], "client_key")
        return cls(**d)

    def _check_owner(self) -> None:
        """The control socket is in a run directory of this user's, owned by the record's
        pid; the key is a private file of this user's."""
        control = Path(self.control)
        owner = control.parent / "owner"
        try:
            st, key = os.lstat(control), os.lstat(self.client_key)
            owner_pid = int(owner.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            owner_pid, st, key = -1, None, None
        mine = st is not None and stat.S_ISSOCK(st.st_mode) and st.st_uid == os.geteuid()
        if control.name != CONTROL or control.parent.parent != run_base() or owner_pid != self.pid or not mine:
            raise UserError(f"control {self.control}: not the control socket of rig process {self.pid} in your "
                            f"run directory ({run_base()}); not a record of a chain held on this machine by you")
        if key is None or not stat.S_ISREG(key.st_mode) or key.st_uid != os.geteuid() or key.st_mode & 0o077:
            raise UserError(f"client_key {self.client_key}: not a private key file of yours (mode 600, not a "
                            "symlink); not a record of a chain held on this machine by you")

    def ask(self, request: HoldRequest, timeout: float = timeouts.HOLD_REQUEST_S) -> HoldAnswer:
        """One request to the held rig; its answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            try:
                s.connect(self.control)
                s.sendall(request.to_line())
                answer = _read_line(s)
            except OSError as e:
                raise InfraError(f"the held rig (pid {self.pid}) did not answer on {self.control}: {e}") from e
        try:
            return HoldAnswer.from_line(answer)
        except ValueError as e:
            raise InfraError(f"the held rig (pid {self.pid}) answered what is not an answer: {answer[:200]!r}") from e


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_line(s: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed before a whole line")
        data += chunk
    return data


class Hold:
    """The chain held: record written, requests served, until stopped or out of time."""

    def __init__(self, chain: Chain, out: Path, minutes: float, verdict: str, progress: Progress):
        self.chain, self.out, self.progress = chain, out, progress
        self.minutes = minutes
        self.control = chain.l1.machine.run_dir / CONTROL     # the run's own: gone with it
        self.stop = threading.Event()
        self.verdict = verdict
        self._server: socket.socket | None = None

    def record(self) -> HoldRecord:
        keys = self.chain.l1.ssh.keys
        return HoldRecord(os.getpid(), time.time() + self.minutes * 60, str(self.control), self.verdict,
                          self.chain.l1.ssh_port, L2_SSH_PORT if self.chain.l2 else None,
                          str(keys.client_private), keys.host_public.strip())

    def wait(self) -> str:
        """Serve until `rig stop` or the time limit; why it ended. Ctrl-C (or SIGTERM, SIGHUP)
        ends the hold too, at any point of it: the verdict stands."""
        server: threading.Thread | None = None
        try:
            rec = self.record()
            self._listen()
            (self.out / KNOWN_HOSTS).write_text(f"[127.0.0.1]:{rec.l1_port} {rec.host_key}\n"
                                                f"[127.0.0.1]:{L2_SSH_PORT} {rec.host_key}\n")
            rec.write(self.out)         # before the lines: whoever reads them can get in at once
            for line in how_to_get_in(self.out, rec):
                print(line, flush=True)
            server = threading.Thread(target=self._serve, name="hold-control", daemon=True)
            server.start()
            if self.stop.wait(timeout=self.minutes * 60):
                return "stopped by `rig stop`"
            return f"its time limit ({self.minutes:g} min) ran out"
        except KeyboardInterrupt:
            return "interrupted"
        finally:
            self.stop.set()
            (self.out / RECORD).unlink(missing_ok=True)
            (self.out / KNOWN_HOSTS).unlink(missing_ok=True)
            if self._server:
                self._server.close()
            if server:
                try:
                    server.join(timeout=timeouts.THREAD_JOIN_S)
                except RuntimeError:    # Ctrl-C came during its start(): it never ran
                    pass
            self.control.unlink(missing_ok=True)

    def _listen(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(str(self.control))
        os.chmod(self.control, 0o600)
        s.listen(4)
        s.settimeout(timeouts.HOLD_POLL_S)       # how soon the server sees the hold end
        self._server = s

    def _serve(self) -> None:
        assert self._server is not None
        while not self.stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return              # closed: the hold ended
            with conn:
                conn.settimeout(timeouts.HOLD_REQUEST_S)
                try:
                    answer = self.answer(HoldRequest.from_line(_read_line(conn)))
                except (OSError, ValueError) as e:
                    answer = HoldAnswer(False, error=f"bad request: {e}")
                try:
                    conn.sendall(answer.to_line())
                except OSError as e:
                    log.warning("hold: answer not sent: %s", e)

    def answer(self, request: HoldRequest) -> HoldAnswer:
        if request.op == "stop":
            self.stop.set()
            return HoldAnswer(True)
        if request.op == "monitor":
            try:
                return HoldAnswer(True, self.monitor(request))
            except Exception as e:  # noqa: BLE001 - QMP's own errors too: the answer says, the hold goes on
                return HoldAnswer(False, error=f"{type(e).__name__}: {e}")
        return HoldAnswer(False, error=f"unknown request {request.op!r}")

    def monitor(self, request: HoldRequest) -> Any:
        """An HMP command line, or a QMP command with arguments, to one of the QEMUs."""
        run: Callable[..., Any]
        if request.target == "l0":
            run = self.chain.l1.machine.cmd
        elif request.target == "l1" and self.chain.l2 is not None:
            run = self.chain.l2.monitor().cmd
        elif request.target == "l1":
            raise InfraError("this chain has no QEMU in L1 (fast mode: L1 runs the userspace consumer)")
        else:
            raise InfraError(f"no monitor {request.target!r}: l0 or l1")
        if request.qmp:
            return run(request.qmp, **request.arguments)
        return run("human-monitor-command", **{"command-line": request.hmp})


def how_to_get_in(out: Path, rec: HoldRecord) -> list[str]:
    left = max(0.0, rec.until - time.time())
    remaining = f"{left / 60:.0f} min" if left >= 120 else f"{left:.0f} s"
    openssh = f"ssh -i {rec.client_key} -o UserKnownHostsFile={out / KNOWN_HOSTS}"
    lines = [f"{HELD_LINE} for {remaining}, until `rig stop {out}` or Ctrl-C",
             f"  rig ssh {out} l1 [COMMAND]",
             f"    or: {openssh} -p {rec.l1_port} root@127.0.0.1"]
    if rec.l2_port:
        lines += [f"  rig ssh {out} l2 [COMMAND]",
                  f"    or: {openssh} -o ProxyCommand='{openssh} -p {rec.l1_port} -W %h:%p root@127.0.0.1' "
                  f"-p {rec.l2_port} root@127.0.0.1"]
    lines.append(f"  rig monitor {out} l0 [HMP COMMAND]   (the QEMU that runs L1)")
    if rec.l2_port:
        lines.append(f"  rig monitor {out} l1 [HMP COMMAND]   (the QEMU in L1 that runs L2)")
    return lines

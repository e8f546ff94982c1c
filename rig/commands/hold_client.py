"""A chain held by `rig run --hold`: `rig ssh`, `rig monitor`, `rig stop`, and the
detached run (`--hold --detach`) that gives the prompt back once the chain is held."""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import subprocess
import sys
import termios
import time
import tty
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rig.commands.common import Subparsers
from rig.core import timeouts
from rig.core.errors import InfraError, UserError

if TYPE_CHECKING:
    from rig.chain.hold_server import HoldRequest

RUN_DIR_HELP = "the results directory of a `rig run --hold` (what it printed as results:)"


def add_parser(sub: Subparsers) -> None:
    p = sub.add_parser("ssh", help="a shell or a command in L1 or L2 of a held chain")
    p.add_argument("run_dir", metavar="RUN_DIR", help=RUN_DIR_HELP)
    p.add_argument("guest", choices=("l1", "l2"))
    p.add_argument("command", nargs=argparse.REMAINDER, help="run this instead of a shell")
    p.set_defaults(handler=cmd_ssh)
    p = sub.add_parser("monitor", help="QEMU's monitor (HMP, or QMP with --qmp) of a held chain: l0 "
                                       "is the QEMU that runs L1, l1 the QEMU in L1 that runs L2")
    p.add_argument("run_dir", metavar="RUN_DIR", help=RUN_DIR_HELP)
    p.add_argument("qemu", choices=("l0", "l1"))
    p.add_argument("command", nargs=argparse.REMAINDER,
                   help="an HMP command line (info pic); none: one per line from stdin")
    p.add_argument("--qmp", metavar="JSON", help='a QMP command instead: {"execute": ..., "arguments": ...}')
    p.set_defaults(handler=cmd_monitor)
    p = sub.add_parser("stop", help="end the hold of a held chain: everything is torn down")
    p.add_argument("run_dir", metavar="RUN_DIR", help=RUN_DIR_HELP)
    p.set_defaults(handler=cmd_stop)


def _record(run_dir: str) -> Any:
    from rig.chain.hold_server import HoldRecord
    return HoldRecord.load(Path(run_dir))


# -- rig ssh ---------------------------------------------------------------------------
def cmd_ssh(args: argparse.Namespace) -> int:
    rec = _record(args.run_dir)
    if args.guest == "l2" and rec.l2_port is None:
        raise UserError(f"{args.run_dir}: its chain has no L2 (fast mode: --consumer userspace); use l1")
    from rig.guests.ssh import GuestSSH
    from rig.host.keys import KeySet
    keys = KeySet(Path(rec.client_key), "", b"", rec.host_key)
    l1 = GuestSSH("l1", keys)
    l1.connect("127.0.0.1", rec.l1_port, timeout=timeouts.L1_SSH_S)
    ssh = l1
    if args.guest == "l2":
        ssh = GuestSSH("l2", keys)
        ssh.connect("127.0.0.1", rec.l2_port, timeout=timeouts.L1_SSH_S,
                    sock=lambda: l1.jump_channel("127.0.0.1", rec.l2_port))
    try:
        command = " ".join(args.command)
        return _command(ssh, command) if command else _shell(ssh)
    finally:
        ssh.close()
        l1.close()


def _command(ssh: Any, command: str) -> int:
    """The command's output as it comes, and its exit status (no time limit: the user's)."""
    chan = ssh.open_session()
    chan.exec_command(command)
    while True:
        if chan.recv_ready():
            sys.stdout.buffer.write(chan.recv(65536))
            sys.stdout.buffer.flush()
        elif chan.recv_stderr_ready():
            sys.stderr.buffer.write(chan.recv_stderr(65536))
            sys.stderr.buffer.flush()
        elif chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready():
            return int(chan.recv_exit_status())
        else:
            select.select([chan], [], [], timeouts.RELAY_POLL_S)


def _shell(ssh: Any) -> int:
    """An interactive shell on a pty, the terminal in raw mode while it lasts."""
    if not sys.stdin.isatty():
        raise UserError("rig ssh without a command needs a terminal; give a command to run")
    chan = ssh.open_session()
    size = os.get_terminal_size()
    chan.get_pty(term=os.environ.get("TERM", "vt100"), width=size.columns, height=size.lines)
    chan.invoke_shell()
    saved = termios.tcgetattr(sys.stdin)
    try:
        tty.setraw(sys.stdin.fileno())
        while not chan.exit_status_ready() or chan.recv_ready():
            ready, _, _ = select.select([chan, sys.stdin], [], [], timeouts.RELAY_POLL_S)
            if chan in ready:
                data = chan.recv(65536)
                if not data:
                    break
                os.write(sys.stdout.fileno(), data)
            if sys.stdin in ready:
                chan.send(os.read(sys.stdin.fileno(), 1024))
    finally:
        termios.tcsetattr(sys.stdin, termios.TCSADRAIN, saved)
    return int(chan.recv_exit_status()) if chan.exit_status_ready() else 0


# -- rig monitor -----------------------------------------------------------------------
def cmd_monitor(args: argparse.Namespace) -> int:
    from rig.chain.hold_server import HoldRequest
    rec = _record(args.run_dir)
    if args.qemu == "l1" and rec.l2_port is None:
        raise UserError(f"{args.run_dir}: its chain has no QEMU in L1 (fast mode: --consumer userspace); use l0")
    if args.command[:1] == ["--qmp"]:       # after the positionals, REMAINDER took it
        args.qmp = " ".join(args.command[1:])
        args.command = []
    if args.qmp:
        try:
            command = json.loads(args.qmp)
            request = HoldRequest("monitor", args.qemu, qmp=str(command["execute"]),
                                  arguments=dict(command.get("arguments") or {}))
        except (ValueError, KeyError, TypeError) as e:
            raise UserError(f'--qmp {args.qmp}: not a QMP command ({e}); give {{"execute": ...}}') from e
        return _ask(rec, request, as_json=True)
    if args.command:
        return _ask(rec, HoldRequest("monitor", args.qemu, hmp=" ".join(args.command)))
    status = 0
    for line in sys.stdin:
        if sys.stdin.isatty():
            print(f"({args.qemu}) ", end="", flush=True)
        if line.strip():
            status = _ask(rec, HoldRequest("monitor", args.qemu, hmp=line.strip())) or status
    return status


def _ask(rec: Any, request: HoldRequest, as_json: bool = False) -> int:
    answer = rec.ask(request)
    if not answer.ok:
        print(f"rig: monitor: {answer.error}", file=sys.stderr)
        return 1
    print(json.dumps(answer.output, indent=1) if as_json else str(answer.output).rstrip("\n"))
    return 0


# -- rig stop --------------------------------------------------------------------------
def cmd_stop(args: argparse.Namespace) -> int:
    from rig.chain.hold_server import RECORD, HoldRequest
    rec = _record(args.run_dir)
    rec.ask(HoldRequest("stop"))
    record = Path(args.run_dir) / RECORD
    deadline = time.monotonic() + timeouts.HOLD_STOP_S
    while _alive(rec.pid):          # its teardown: L1 powered off, QEMUs gone
        if time.monotonic() > deadline:
            raise InfraError(f"the held rig (pid {rec.pid}) did not finish tearing down in "
                             f"{timeouts.HOLD_STOP_S:.0f} s; it was sent SIGTERM")
        _wait_exit(rec.pid, timeouts.HOLD_POLL_S)
    print(f"stopped: the chain of {args.run_dir} is torn down"
          f"{'' if not record.exists() else ' (its record was left: removed)'}")
    record.unlink(missing_ok=True)
    return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_exit(pid: int, seconds: float) -> None:
    """Wait up to seconds for pid (not our child) to exit: pidfd's poll, an event, no sleep."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        select.select([fd], [], [], seconds)
    finally:
        os.close(fd)


# -- rig run --hold --detach -----------------------------------------------------------
def run_detached(argv: list[str], out: Path) -> int:
    """The same rig run without --detach, in its own session (a closing terminal does not end
    it), its output in OUT/hold.log shown here until the chain is held; then the prompt
    comes back with the verdict's exit status."""
    from rig.chain.hold_server import HELD_LINE, RECORD, HoldRecord, how_to_get_in
    from rig.chain.verdict import EXIT_STATUS
    from rig.core.kinds import Outcome
    out.mkdir(parents=True, exist_ok=True)
    argv = [a for a in argv if a != "--detach"]
    if "--out" not in argv and not any(a.startswith("--out=") for a in argv):
        argv += ["--out", str(out)]
    log_path = out / "hold.log"
    (out / RECORD).unlink(missing_ok=True)
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "rig", *argv], stdin=subprocess.DEVNULL,
                                stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    shown = 0
    deadline = time.monotonic() + timeouts.HOLD_DETACH_S
    try:
        while True:
            shown = _echo(log_path, shown)
            if (out / RECORD).is_file():       # the verdict was written and printed before it
                _echo(log_path, shown, until=HELD_LINE)
                for line in how_to_get_in(out, HoldRecord.load(out)):
                    print(line)
                verdict = json.loads((out / "result.json").read_text())["verdict"]["verdict"]
                print(f"detached: the held rig is pid {proc.pid}; its output goes on in {log_path}")
                return EXIT_STATUS[Outcome(verdict)]
            try:
                rc = proc.wait(timeout=timeouts.HOLD_POLL_S)
                _echo(log_path, shown)
                return rc
            except subprocess.TimeoutExpired:
                pass
            if time.monotonic() > deadline:
                raise InfraError(f"the detached run held nothing in {timeouts.HOLD_DETACH_S:.0f} s "
                                 f"(its output: {log_path})")
    except BaseException:
        if proc.poll() is None:       # Ctrl-C before the hold: the run in the background ends too
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=timeouts.HOLD_STOP_S)
        raise


def _echo(path: Path, offset: int, until: str | None = None) -> int:
    """Show what the log got since offset (up to the line starting with `until`)."""
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read()
    if until is not None and (at := data.find(until.encode())) >= 0:
        data = data[:at]
    if data:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    return offset + len(data)

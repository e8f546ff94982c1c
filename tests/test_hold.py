"""rig run --hold without guests: the record another rig reads, the control socket's
requests (stop, a monitor command, what cannot be asked), and what the terminal is told.
A chain held for real: tests/test_hold_e2e.py."""

import os
import socket
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from rig.chain.hold_server import (
    CONTROL,
    KNOWN_HOSTS,
    RECORD,
    Hold,
    HoldAnswer,
    HoldRecord,
    HoldRequest,
    how_to_get_in,
)
from rig.core.errors import InfraError, UserError
from rig.core.progress import Progress
from rig.host.rundir import RunDir

pytestmark = pytest.mark.unit


class FakeMachine:
    """L0's QEMU as the hold sees it: QMP commands in, answers out; the run directory."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.asked: list[tuple[str, dict]] = []

    def cmd(self, command, **args):
        self.asked.append((command, args))
        if command == "human-monitor-command":
            return f"answer to {args['command-line']}\n"
        if command == "query-status":
            return {"status": "running"}
        raise InfraError(f"l1: QMP {command} failed: unknown")


@pytest.fixture
def rig_dir(run_base):
    """This process's run directory, where a held rig's control socket is."""
    with RunDir("hold") as rd:
        yield rd


def private_key(tmp_path: Path) -> Path:
    key = tmp_path / "client_ed25519"
    key.write_text("key")
    key.chmod(0o600)
    return key


def fake_chain(tmp_path: Path, run_dir, l2=None):
    keys = SimpleNamespace(client_private=private_key(tmp_path), host_public="ssh-ed25519 AAAAhost\n")
    l1 = SimpleNamespace(machine=FakeMachine(run_dir), ssh=SimpleNamespace(keys=keys), ssh_port=40000)
    return SimpleNamespace(l1=l1, l2=l2)


def test_the_record_round_trips_and_names_a_living_rig(tmp_path, rig_dir):
    with socket.socket(socket.AF_UNIX) as control:
        control.bind(str(rig_dir / CONTROL))
        rec = HoldRecord(os.getpid(), time.time() + 60, str(rig_dir / CONTROL), "STALL", 40000, 2222,
                         str(private_key(tmp_path)), "ssh-ed25519 AAAA")
        out = tmp_path / "out"
        out.mkdir()
        rec.write(out)
        assert HoldRecord.load(out) == rec
        assert not [p for p in out.iterdir() if p.name != RECORD], "the temporary file was left"


def test_a_record_of_a_gone_rig_is_not_a_hold(tmp_path):
    import subprocess
    p = subprocess.Popen(["true"])
    p.wait()
    HoldRecord(p.pid, 0, "/x", "PASS", 1, None, "/k", "ssh-ed25519 AAAA").write(tmp_path)
    with pytest.raises(UserError, match="not held any more"):
        HoldRecord.load(tmp_path)


def test_requests_on_the_control_socket(tmp_path, rig_dir):
    """The held rig's side and another rig's side of the socket, for real, in threads."""
    chain = fake_chain(tmp_path, rig_dir)
    hold = Hold(chain, tmp_path, 1.0, "STALL", Progress(quiet=True))
    ended: list[str] = []
    t = threading.Thread(target=lambda: ended.append(hold.wait()))
    t.start()
    try:
        deadline = time.monotonic() + 10
        while not (tmp_path / RECORD).exists():     # the record is written last
            assert time.monotonic() < deadline, "no held.json within 10 s"
            t.join(timeout=0.05)
        rec = HoldRecord.load(tmp_path)
        assert rec.verdict == "STALL" and rec.l1_port == 40000 and rec.l2_port is None
        assert (tmp_path / KNOWN_HOSTS).read_text().startswith("[127.0.0.1]:40000 ssh-ed25519 AAAAhost")
        assert rec.ask(HoldRequest("monitor", "l0", hmp="info pic")) == HoldAnswer(True, "answer to info pic\n")
        assert rec.ask(HoldRequest("monitor", "l0", qmp="query-status")).output == {"status": "running"}
        no_l2 = rec.ask(HoldRequest("monitor", "l1", hmp="info pic"))
        assert not no_l2.ok and "no QEMU in L1" in no_l2.error
        failed = rec.ask(HoldRequest("monitor", "l0", qmp="no-such-command"))
        assert not failed.ok and "unknown" in failed.error       # answered; the hold goes on
        assert not rec.ask(HoldRequest("reboot")).ok
        assert rec.ask(HoldRequest("stop")) == HoldAnswer(True)
        t.join(timeout=10)
    finally:
        hold.stop.set()
        t.join(timeout=10)
    assert ended == ["stopped by `rig stop`"]
    assert not (tmp_path / RECORD).exists() and not (tmp_path / KNOWN_HOSTS).exists()
    assert not (rig_dir / CONTROL).exists()


def test_a_hold_runs_out_by_itself(tmp_path, rig_dir):
    hold = Hold(fake_chain(tmp_path, rig_dir), tmp_path, 0.01, "PASS", Progress(quiet=True))
    assert hold.wait() == "its time limit (0.01 min) ran out"
    assert not (tmp_path / RECORD).exists()


def test_the_terminal_is_told_how_to_get_into_each_layer(tmp_path):
    rec = HoldRecord(1, time.time() + 1800, "/s", "STALL", 40000, 2222, "/keys/client", "ssh-ed25519 A")
    text = "\n".join(how_to_get_in(tmp_path, rec))
    assert f"held: the chain stays up for 30 min, until `rig stop {tmp_path}` or Ctrl-C" in text
    for line in (f"rig ssh {tmp_path} l1", f"rig ssh {tmp_path} l2", f"rig monitor {tmp_path} l0",
                 f"rig monitor {tmp_path} l1", "-p 40000 root@127.0.0.1", "-W %h:%p"):
        assert line in text
    fast = "\n".join(how_to_get_in(tmp_path, HoldRecord(1, 0, "/s", "PASS", 40000, None, "/k", "h")))
    assert " l2" not in fast and "monitor" in fast


def test_the_control_protocol_keeps_its_lines_and_refuses_what_is_not_a_request():
    """The lines on the control socket, as rig monitor/stop of any version send them."""
    assert HoldRequest("stop").to_line() == b'{"op": "stop"}\n'
    assert HoldRequest("monitor", "l0", hmp="info pic").to_line() == \
        b'{"op": "monitor", "target": "l0", "hmp": "info pic"}\n'
    q = HoldRequest.from_line('{"op": "monitor", "target": "l1", "qmp": "query-status", "arguments": {"a": 1}}')
    assert (q.qmp, q.arguments) == ("query-status", {"a": 1})
    assert HoldAnswer(True).to_line() == b'{"ok": true}\n'
    assert HoldAnswer(False, error="x").to_line() == b'{"ok": false, "error": "x"}\n'
    for bad in ('[]', '{"op": "stop", "shell": "rm -rf /"}', '{"op": 1}', '{"op": "monitor", "arguments": []}'):
        with pytest.raises(ValueError):
            HoldRequest.from_line(bad)

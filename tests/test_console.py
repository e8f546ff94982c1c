"""The console's command runner against a fake shell on a socketpair (no QEMU)."""

import socket
import threading

import pytest

from rig.guests.console import Console

pytestmark = pytest.mark.unit


def fake_shell(sock):
    line = b""
    while not line.endswith(b"\n"):
        line += sock.recv(1)
    cmd = line.decode().strip()
    # a real tty echoes the command line first, then the output, then the prompt
    # (wrapped at the terminal width, as busybox's line editing does)
    echo = cmd.encode()
    sock.sendall(echo[:40] + b"\r\r\n" + echo[40:] + b"\r\n" + b"RIG-BEGIN-OF-OUTPUT\r\n"
                 b"inet 10.0.2.15/24\r\n123\r\nRIG-END-OF-OUTPUT\r\nrig-l1# ")


def test_run_returns_the_output_not_the_echo(tmp_path):
    a, b = socket.socketpair()
    console = Console.over(a, "l1", tmp_path / "console.log")
    t = threading.Thread(target=fake_shell, args=(b,), daemon=True)
    t.start()
    try:
        out = console.run("ip -o -4 addr; pidof dropbear", 5)
        assert out.splitlines() == ["inet 10.0.2.15/24", "123"]
        assert "RIG-END" in (tmp_path / "console.log").read_text()
    finally:
        console.close()
        b.close()


def test_an_end_marker_is_seen_without_consuming_the_console(tmp_path):
    """L2's exit line: seen by the health check whether the pump or an expect read it,
    and still there for expect."""
    a, b = socket.socketpair()
    console = Console.over(a, "l2", tmp_path / "console.log")
    try:
        assert console.seen(r"rig-l2-exit: (\d+)") is None
        b.sendall(b"Kernel panic - not syncing\r\nrig-l2-exit: 0\n")
        m = console.expect(r"rig-l2-exit: (\d+)", 5, "the exit line")
        assert m.group(1) == "0"
        seen = console.seen(r"rig-l2-exit: (\d+)")
        assert seen and seen.group(1) == "0"
    finally:
        console.close()
        b.close()

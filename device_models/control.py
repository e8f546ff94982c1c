"""The rig's control channel to a device model: JSON lines over a UNIX socket.

Requests: {"op": "push", "n": N} (N bytes into the device's input: N RX interrupts),
{"op": "mode", "paced": bool, "gap": seconds}, {"op": "counters"}. Every reply is one
JSON line with "ok", and for counters the device's counters with a timestamp: interrupts
raised, signalled and re-signalled, serviced (the guest read the data), seconds asserted
but unserviced, UNMASK messages received, config writes (the INTx-disable evidence).
"""

from __future__ import annotations

import json
import logging
import socket
import time

from .unix_service import UnixService

log = logging.getLogger("control")


def snapshot(device) -> dict:
    with device.lock:
        c = dict(device.counters)
        c["asserted_s"] = round(c["asserted_s"] + device.intx.asserted_now_s(), 4)
        return {"t": time.monotonic(), "counters": c, "level": device.intx.level,
                "masked": device.intx.masked, "rx": len(device.rx), "backlog": len(device.backlog),
                "pci_2_3": device.pci_2_3, "command": device.command()}


def handle(device, request: dict) -> dict:
    op = request.get("op")
    if op == "push":
        n = int(request.get("n", 1))
        if not 0 < n <= 1 << 20:
            raise ValueError(f"push of {n} bytes")
        device.push(b"a" * n)
        return {"ok": True}
    if op == "mode":
        with device.lock:
            device.paced = bool(request.get("paced", device.paced))
            device.gap = float(request.get("gap", device.gap))
        return {"ok": True}
    if op == "counters":
        return {"ok": True, **snapshot(device)}
    raise ValueError(f"unknown op {op!r}")


class Control(UnixService):
    concurrent = True

    def __init__(self, path: str, device):
        super().__init__(path, "control")
        self.device = device

    def serve(self, sock: socket.socket) -> None:
        with sock, sock.makefile("rwb", buffering=0) as f:
            for line in f:
                try:
                    reply = handle(self.device, json.loads(line))
                except (ValueError, TypeError, AttributeError) as e:
                    log.warning("control: bad request %r: %s", line[:80], e)
                    reply = {"ok": False, "error": str(e)}
                try:
                    f.write(json.dumps(reply).encode() + b"\n")
                except OSError:
                    return


class ControlClient:
    """The rig's side."""

    def __init__(self, path: str, timeout: float = 10):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.f = self.sock.makefile("rwb", buffering=0)

    def request(self, **req) -> dict:
        self.f.write(json.dumps(req).encode() + b"\n")
        line = self.f.readline()
        if not line:
            raise ConnectionError("the device model closed its control channel")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise ValueError(reply.get("error"))
        return reply

    def push(self, n: int = 1) -> None:
        self.request(op="push", n=n)

    def counters(self) -> dict:
        return self.request(op="counters")

    def close(self) -> None:
        self.f.close()
        self.sock.close()

"""Relays between a paramiko channel and a real socket.

QMP (asyncio) and pexpect need real file descriptors; an SSH channel into L1 is not one.
A relay thread copies bytes both ways between the channel and one end of a socketpair,
and the other end is what QMP or pexpect uses.
"""

from __future__ import annotations

import select
import socket
import threading

from rig.core import timeouts


class ChannelRelay:
    def __init__(self, channel, name: str):
        self.channel = channel
        self.name = name
        self.local, self._inner = socket.socketpair()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"relay-{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([self.channel, self._inner], [], [], timeouts.RELAY_POLL_S)
                if self.channel in ready:
                    data = self.channel.recv(65536)
                    if not data:
                        break
                    self._inner.sendall(data)
                if self._inner in ready:
                    data = self._inner.recv(65536)
                    if not data:
                        break
                    self.channel.sendall(data)
        except (OSError, EOFError):
            pass
        finally:
            # Either side gone ends both: the far end (a QEMU monitor serving one client)
            # must see its client leave when the local user closes its socket.
            self._inner.close()
            try:
                self.channel.close()
            except Exception:  # noqa: BLE001 - a channel whose transport is already gone
                pass

    def close(self) -> None:
        self._stop.set()
        try:
            self.channel.close()
        except Exception:  # noqa: BLE001 - closing a dead channel must not stop teardown
            pass
        self._thread.join(timeout=timeouts.THREAD_JOIN_S)
        self.local.close()

"""A minimal vfio-user client for the tests: sends commands (with fds) over a socket."""

import array
import os
import socket
import struct

from device_models.vfio_user import protocol as p


class Client:
    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.next_id = 1

    def send(self, command: int, payload: bytes = b"", fds=(), flags: int = 0) -> int:
        msg_id = self.next_id
        self.next_id += 1
        data = p.HEADER.pack(msg_id, command, p.HEADER_SIZE + len(payload), flags, 0) + payload
        anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
        self.sock.sendmsg([data], anc)
        return msg_id

    def recv(self) -> tuple[p.Header, bytes]:
        head = self._exact(p.HEADER_SIZE)
        h = p.Header(*p.HEADER.unpack(head))
        return h, self._exact(h.size - p.HEADER_SIZE)

    def _exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def call(self, command: int, payload: bytes = b"", fds=()) -> tuple[p.Header, bytes]:
        self.send(command, payload, fds)
        return self.recv()

    def version(self) -> tuple[p.Header, bytes]:
        caps = b'{"capabilities":{"max_msg_fds":16,"max_data_xfer_size":1048576,"pgsizes":4096}}\0'
        return self.call(p.VERSION, struct.pack("<HH", 0, 1) + caps)

    def region_read(self, region: int, offset: int, count: int) -> bytes:
        h, body = self.call(p.REGION_READ, p.REGION_ACCESS.pack(offset, region, count))
        assert not h.flags & p.ERROR, h
        return body[p.REGION_ACCESS.size:]

    def region_write(self, region: int, offset: int, data: bytes, posted: bool = False):
        payload = p.REGION_ACCESS.pack(offset, region, len(data)) + data
        if posted:
            self.send(p.REGION_WRITE, payload, flags=p.NO_REPLY)
            return None
        return self.call(p.REGION_WRITE, payload)

    def set_irqs(self, flags: int, index: int = 0, count: int = 1, fds=()):
        payload = p.IRQ_SET.pack(p.IRQ_SET.size + 4 * len(fds), flags, index, 0, count)
        return self.call(p.DEVICE_SET_IRQS, payload, fds)


def eventfd() -> int:
    return os.eventfd(0, os.EFD_NONBLOCK)


def eventfd_count(fd: int) -> int:
    try:
        return struct.unpack("<Q", os.read(fd, 8))[0]
    except BlockingIOError:
        return 0

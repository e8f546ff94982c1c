"""A vfio-user server: one client connection at a time on a UNIX socket, messages
dispatched to a device model (device_models.pci.PciFunction or anything with its methods).

It survives any client: a message that cannot be framed (size out of bounds, truncated,
the client gone mid-message) closes that connection; a request it cannot honour (unknown
command, bad region offset, short payload) gets a vfio-user error reply. Either way it
logs one line and goes on serving.
"""

from __future__ import annotations

import array
import errno
import logging
import os
import socket

from ..unix_service import UnixService
from . import protocol as p

log = logging.getLogger("vfio-user")


class Connection:
    def __init__(self, sock: socket.socket, device, name: str = "client"):
        self.sock = sock
        self.device = device
        self.name = name
        self.dma: dict[int, int] = {}   # address -> size (accepted, never used: no DMA)
        self.counts: dict[str, int] = {}

    # -- framing --------------------------------------------------------------------------
    def _recv_exact(self, n: int, fds: list[int] | None = None) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            if fds is not None and not buf:
                data, anc, _, _ = self.sock.recvmsg(n, socket.CMSG_SPACE(p.MAX_FDS * 4))
                for level, kind, payload in anc:
                    if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                        a = array.array("i")
                        a.frombytes(payload[:len(payload) - len(payload) % 4])
                        fds.extend(a)
            else:
                data = self.sock.recv(n - len(buf))
            if not data:
                raise EOFError(f"client closed after {len(buf)} of {n} bytes")
            buf += data
        return bytes(buf)

    def _send(self, header: bytes, payload: bytes = b"") -> None:
        self.sock.sendall(header + payload)

    # -- the loop ---------------------------------------------------------------------------
    def serve(self) -> None:
        try:
            while True:
                fds: list[int] = []
                try:
                    header = p.parse_header(self._recv_exact(p.HEADER_SIZE, fds))
                    payload = self._recv_exact(header.size - p.HEADER_SIZE, fds)
                except (EOFError, ConnectionError) as e:
                    if str(e) and "after 0 of 16" not in str(e):
                        log.warning("%s: %s; closing the connection", self.name, e)
                    return
                except p.BadMessage as e:
                    log.warning("%s: malformed message (%s); closing the connection", self.name, e)
                    self._close_fds(fds)
                    return
                self._handle(header, payload, fds)
        finally:
            self.device.disconnected()
            self.sock.close()

    def _handle(self, h: p.Header, payload: bytes, fds: list[int]) -> None:
        name = p.NAMES.get(h.command, str(h.command))
        self.counts[name] = self.counts.get(name, 0) + 1
        try:
            if not h.is_command:
                raise p.ProtocolError(errno.EINVAL, "a reply where a command was expected")
            handler = HANDLERS.get(h.command)
            if handler is None:
                raise p.ProtocolError(errno.ENOSYS, f"command {h.command} not supported")
            reply, unused = handler(self, payload, fds)
            self._close_fds(unused)
            if not h.no_reply:
                self._send(p.reply_header(h, len(reply)), reply)
        except p.ProtocolError as e:
            self._close_fds(fds)
            log.warning("%s: %s failed: %s", self.name, name, e)
            if not h.no_reply:
                self._send(p.reply_header(h, 0, e.errno))
        except OSError as e:
            self._close_fds(fds)
            log.warning("%s: %s failed: %s", self.name, name, e)
            if not h.no_reply:
                self._send(p.reply_header(h, 0, e.errno or errno.EIO))

    @staticmethod
    def _close_fds(fds: list[int]) -> None:
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass

    # -- handlers: (payload, fds) -> (reply payload, fds not kept) ------------------------------
    def on_version(self, payload, fds):
        major, minor, _caps = p.parse_version(payload)
        if major != 0:
            raise p.ProtocolError(errno.ENOTSUP, f"protocol major {major} (we speak 0)")
        return p.version_reply(major, min(minor, 2), len(payload)), fds

    def on_dma_map(self, payload, fds):
        address, size = p.parse_dma_map(payload)
        if address in self.dma:
            raise p.ProtocolError(errno.EEXIST, f"DMA map over 0x{address:x}")
        self.dma[address] = size
        return b"", fds  # no DMA is ever done: the region's fd is not kept

    def on_dma_unmap(self, payload, fds):
        address, _ = p.parse_dma_unmap(payload)
        self.dma.pop(address, None)
        return payload[:p.DMA_UNMAP_STRUCT.size], fds

    def on_device_info(self, payload, fds):
        return p.device_info_reply(self.device.device_flags, p.PCI_NUM_REGIONS, p.PCI_NUM_IRQS), fds

    def on_region_info(self, payload, fds):
        index = p.parse_index(payload, "GET_REGION_INFO")
        flags, size = self.device.region_info(index)
        return p.region_info_reply(index, flags, size), fds

    def on_irq_info(self, payload, fds):
        index = p.parse_index(payload, "GET_IRQ_INFO")
        flags, count = self.device.irq_info(index)
        return p.irq_info_reply(index, flags, count), fds

    def on_set_irqs(self, payload, fds):
        return b"", self.device.set_irqs(p.parse_irq_set(payload), fds)

    def on_region_read(self, payload, fds):
        offset, region, count, _ = p.parse_region_access(payload, write=False)
        return p.region_read_reply(offset, region, self.device.region_read(region, offset, count)), fds

    def on_region_write(self, payload, fds):
        offset, region, count, data = p.parse_region_access(payload, write=True)
        self.device.region_write(region, offset, data)
        return p.region_write_reply(offset, region, count), fds

    def on_write_multi(self, payload, fds):
        writes = p.parse_write_multi(payload)
        for offset, region, data in writes:
            self.device.region_write(region, offset, data)
        return len(writes).to_bytes(8, "little"), fds

    def on_reset(self, payload, fds):
        self.device.reset()
        return b"", fds


HANDLERS = {
    p.VERSION: Connection.on_version, p.DMA_MAP: Connection.on_dma_map,
    p.DMA_UNMAP: Connection.on_dma_unmap, p.DEVICE_GET_INFO: Connection.on_device_info,
    p.DEVICE_GET_REGION_INFO: Connection.on_region_info, p.DEVICE_GET_IRQ_INFO: Connection.on_irq_info,
    p.DEVICE_SET_IRQS: Connection.on_set_irqs, p.REGION_READ: Connection.on_region_read,
    p.REGION_WRITE: Connection.on_region_write, p.REGION_WRITE_MULTI: Connection.on_write_multi,
    p.DEVICE_RESET: Connection.on_reset,
}


class Server(UnixService):
    """Listens on a UNIX socket and serves one client at a time, until close()."""

    def __init__(self, path: str, device):
        super().__init__(path, "vfio-user")
        self.device = device
        self.connections = 0
        self.last: Connection | None = None

    def serve(self, sock: socket.socket) -> None:
        self.connections += 1
        self.last = Connection(sock, self.device, f"client {self.connections}")
        self.last.serve()

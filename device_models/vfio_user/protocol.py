"""vfio-user wire format (QEMU docs/interop/vfio-user.rst): the 16-byte header, commands,
and the payloads this server reads and writes. Pure functions over bytes, so the decoder
can be fuzzed without a socket. Host endianness (little-endian on every host we run).
"""

from __future__ import annotations

import errno
import json
import struct
from dataclasses import dataclass

HEADER = struct.Struct("<HHII I")  # id, command, size, flags, error
HEADER_SIZE = HEADER.size  # 16
MAX_DATA_XFER = 1 << 20
MAX_MESSAGE = HEADER_SIZE + MAX_DATA_XFER + 64
MAX_FDS = 8

# Commands
VERSION, DMA_MAP, DMA_UNMAP, DEVICE_GET_INFO, DEVICE_GET_REGION_INFO = 1, 2, 3, 4, 5
DEVICE_GET_REGION_IO_FDS, DEVICE_GET_IRQ_INFO, DEVICE_SET_IRQS = 6, 7, 8
REGION_READ, REGION_WRITE, DMA_READ, DMA_WRITE, DEVICE_RESET = 9, 10, 11, 12, 13
REGION_WRITE_MULTI, DEVICE_FEATURE = 15, 16
NAMES = {VERSION: "VERSION", DMA_MAP: "DMA_MAP", DMA_UNMAP: "DMA_UNMAP",
         DEVICE_GET_INFO: "DEVICE_GET_INFO", DEVICE_GET_REGION_INFO: "DEVICE_GET_REGION_INFO",
         DEVICE_GET_REGION_IO_FDS: "DEVICE_GET_REGION_IO_FDS", DEVICE_GET_IRQ_INFO: "DEVICE_GET_IRQ_INFO",
         DEVICE_SET_IRQS: "DEVICE_SET_IRQS", REGION_READ: "REGION_READ", REGION_WRITE: "REGION_WRITE",
         DEVICE_RESET: "DEVICE_RESET", REGION_WRITE_MULTI: "REGION_WRITE_MULTI",
         DEVICE_FEATURE: "DEVICE_FEATURE"}

# Header flags
TYPE_COMMAND, TYPE_REPLY, TYPE_MASK = 0x0, 0x1, 0xF
NO_REPLY, ERROR = 0x10, 0x20

# <linux/vfio.h> values the protocol reuses
DEVICE_FLAGS_RESET, DEVICE_FLAGS_PCI = 1 << 0, 1 << 1
REGION_INFO_FLAG_READ, REGION_INFO_FLAG_WRITE = 1 << 0, 1 << 1
IRQ_INFO_EVENTFD, IRQ_INFO_MASKABLE, IRQ_INFO_AUTOMASKED, IRQ_INFO_NORESIZE = 1, 2, 4, 8
IRQ_SET_DATA_NONE, IRQ_SET_DATA_BOOL, IRQ_SET_DATA_EVENTFD = 1 << 0, 1 << 1, 1 << 2
IRQ_SET_ACTION_MASK, IRQ_SET_ACTION_UNMASK, IRQ_SET_ACTION_TRIGGER = 1 << 3, 1 << 4, 1 << 5
PCI_BAR0_REGION, PCI_CONFIG_REGION, PCI_NUM_REGIONS = 0, 7, 9
PCI_INTX_IRQ, PCI_MSI_IRQ, PCI_MSIX_IRQ, PCI_ERR_IRQ, PCI_REQ_IRQ, PCI_NUM_IRQS = 0, 1, 2, 3, 4, 5


class ProtocolError(Exception):
    """A request that gets an error reply (errno) rather than a dropped connection."""

    def __init__(self, err: int, message: str):
        super().__init__(message)
        self.errno = err


class BadMessage(Exception):
    """A message that cannot be framed (size out of bounds): the connection is closed."""


@dataclass(frozen=True)
class Header:
    msg_id: int
    command: int
    size: int
    flags: int
    error: int

    @property
    def no_reply(self) -> bool:
        return bool(self.flags & NO_REPLY)

    @property
    def is_command(self) -> bool:
        return self.flags & TYPE_MASK == TYPE_COMMAND


def parse_header(data: bytes) -> Header:
    if len(data) != HEADER_SIZE:
        raise BadMessage(f"header of {len(data)} bytes")
    h = Header(*HEADER.unpack(data))
    if h.size < HEADER_SIZE or h.size > MAX_MESSAGE:
        raise BadMessage(f"message size {h.size} out of bounds")
    return h


def reply_header(h: Header, payload_len: int, err: int | None = None) -> bytes:
    flags = TYPE_REPLY | (ERROR if err is not None else 0)
    return HEADER.pack(h.msg_id, h.command, HEADER_SIZE + payload_len, flags, err or 0)


def need(payload: bytes, n: int, what: str) -> None:
    if len(payload) < n:
        raise ProtocolError(errno.EINVAL, f"{what}: payload of {len(payload)} bytes, need {n}")


# -- VERSION ----------------------------------------------------------------------------
def parse_version(payload: bytes) -> tuple[int, int, dict]:
    need(payload, 4, "VERSION")
    major, minor = struct.unpack_from("<HH", payload)
    caps: dict = {}
    raw = payload[4:].split(b"\0", 1)[0]
    if raw:
        try:
            caps = json.loads(raw.decode()).get("capabilities", {}) or {}
        except (ValueError, UnicodeDecodeError, AttributeError):
            raise ProtocolError(errno.EINVAL, "VERSION: capabilities are not JSON") from None
        if not isinstance(caps, dict):
            raise ProtocolError(errno.EINVAL, "VERSION: capabilities is not an object")
    return major, minor, caps


def version_reply(major: int, minor: int, request_len: int) -> bytes:
    """Our capabilities, NUL-terminated, never larger than the request (QEMU checks)."""
    for caps in ({"capabilities": {"max_msg_fds": MAX_FDS, "max_data_xfer_size": MAX_DATA_XFER}},
                 {"capabilities": {"max_msg_fds": MAX_FDS}}, {}):
        body = struct.pack("<HH", major, minor) + json.dumps(caps, separators=(",", ":")).encode() + b"\0"
        if len(body) <= max(request_len, 4 + 3):
            return body
    return struct.pack("<HH", major, minor)


# -- DMA --------------------------------------------------------------------------------
DMA_MAP_STRUCT = struct.Struct("<IIQQQ")      # argsz, flags, offset, address, size
DMA_UNMAP_STRUCT = struct.Struct("<IIQQ")     # argsz, flags, address, size


def parse_dma_map(payload: bytes) -> tuple[int, int]:
    need(payload, DMA_MAP_STRUCT.size, "DMA_MAP")
    _, _, _, address, size = DMA_MAP_STRUCT.unpack_from(payload)
    return address, size


def parse_dma_unmap(payload: bytes) -> tuple[int, int]:
    need(payload, DMA_UNMAP_STRUCT.size, "DMA_UNMAP")
    _, _, address, size = DMA_UNMAP_STRUCT.unpack_from(payload)
    return address, size


# -- device, region and IRQ info --------------------------------------------------------
DEVICE_INFO = struct.Struct("<IIII")          # argsz, flags, num_regions, num_irqs
REGION_INFO = struct.Struct("<IIIIQQ")        # argsz, flags, index, cap_offset, size, offset
IRQ_INFO = struct.Struct("<IIII")             # argsz, flags, index, count
IRQ_SET = struct.Struct("<IIIII")             # argsz, flags, index, start, count
REGION_ACCESS = struct.Struct("<QII")         # offset, region, count


def device_info_reply(flags: int, num_regions: int, num_irqs: int) -> bytes:
    return DEVICE_INFO.pack(DEVICE_INFO.size, flags, num_regions, num_irqs)


def parse_index(payload: bytes, what: str) -> int:
    need(payload, 12, what)
    return struct.unpack_from("<I", payload, 8)[0]


def region_info_reply(index: int, flags: int, size: int) -> bytes:
    # offset: nothing is mmap()able here, every access is a REGION_READ/WRITE message
    return REGION_INFO.pack(REGION_INFO.size, flags, index, 0, size, 0)


def irq_info_reply(index: int, flags: int, count: int) -> bytes:
    return IRQ_INFO.pack(IRQ_INFO.size, flags, index, count)


@dataclass(frozen=True)
class IrqSet:
    flags: int
    index: int
    start: int
    count: int
    data: bytes

    @property
    def action(self) -> int:
        return self.flags & (IRQ_SET_ACTION_MASK | IRQ_SET_ACTION_UNMASK | IRQ_SET_ACTION_TRIGGER)

    @property
    def data_type(self) -> int:
        return self.flags & (IRQ_SET_DATA_NONE | IRQ_SET_DATA_BOOL | IRQ_SET_DATA_EVENTFD)


def parse_irq_set(payload: bytes) -> IrqSet:
    need(payload, IRQ_SET.size, "SET_IRQS")
    _, flags, index, start, count = IRQ_SET.unpack_from(payload)
    s = IrqSet(flags, index, start, count, payload[IRQ_SET.size:])
    if bin(s.action).count("1") != 1 or bin(s.data_type).count("1") != 1:
        raise ProtocolError(errno.EINVAL, f"SET_IRQS: flags 0x{flags:x} need one action and one data type")
    return s


def parse_region_access(payload: bytes, write: bool) -> tuple[int, int, int, bytes]:
    need(payload, REGION_ACCESS.size, "REGION_WRITE" if write else "REGION_READ")
    offset, region, count = REGION_ACCESS.unpack_from(payload)
    if count > MAX_DATA_XFER:
        raise ProtocolError(errno.EINVAL, f"region access of {count} bytes")
    data = payload[REGION_ACCESS.size:REGION_ACCESS.size + count] if write else b""
    if write and len(data) != count:
        raise ProtocolError(errno.EINVAL, f"REGION_WRITE: {len(data)} data bytes for count {count}")
    return offset, region, count, data


def region_read_reply(offset: int, region: int, data: bytes) -> bytes:
    return REGION_ACCESS.pack(offset, region, len(data)) + data


def region_write_reply(offset: int, region: int, count: int) -> bytes:
    return REGION_ACCESS.pack(offset, region, count)


WRITE_MULTI_ENTRY = struct.Struct("<QII8s")   # offset, region, count, data (<= 8 bytes)


def parse_write_multi(payload: bytes) -> list[tuple[int, int, bytes]]:
    need(payload, 8, "REGION_WRITE_MULTI")
    (n,) = struct.unpack_from("<Q", payload)
    if n > (len(payload) - 8) // WRITE_MULTI_ENTRY.size:
        raise ProtocolError(errno.EINVAL, f"REGION_WRITE_MULTI: {n} writes in {len(payload)} bytes")
    out = []
    for i in range(n):
        offset, region, count, data = WRITE_MULTI_ENTRY.unpack_from(payload, 8 + i * WRITE_MULTI_ENTRY.size)
        if count > 8:
            raise ProtocolError(errno.EINVAL, f"REGION_WRITE_MULTI entry of {count} bytes")
        out.append((offset, region, data[:count]))
    return out

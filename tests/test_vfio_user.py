"""vfio-user protocol and server, over a socketpair (no QEMU): negotiation, info, region
access, INTx over eventfds, and a server that survives any client."""

import errno
import logging
import os
import socket
import struct
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vfio_user_client import Client, eventfd, eventfd_count

from device_models.legacy_uart import LegacyUart
from device_models.vfio_user import protocol as p
from device_models.vfio_user.server import Connection

pytestmark = pytest.mark.unit


@pytest.fixture
def served():
    """(client, device, connection) with the server side running in a thread."""
    a, b = socket.socketpair()
    device = LegacyUart(pci_2_3=False, gap=0.0)
    conn = Connection(b, device)
    t = threading.Thread(target=conn.serve, daemon=True)
    t.start()
    yield Client(a), device, conn
    a.close()
    t.join(timeout=5)
    device.close()


def test_version_reply_is_nul_terminated_and_no_larger_than_the_request(served):
    client, _, _ = served
    h, body = client.version()
    assert h.flags & p.TYPE_MASK == p.TYPE_REPLY and not h.flags & p.ERROR
    major, minor = struct.unpack_from("<HH", body)
    assert (major, minor) == (0, 1) and body.endswith(b"\0")
    caps = b'{"capabilities":{"max_msg_fds":16,"max_data_xfer_size":1048576,"pgsizes":4096}}\0'
    assert len(body) <= 4 + len(caps)


def test_device_region_and_irq_info(served):
    client, _, _ = served
    client.version()
    _, body = client.call(p.DEVICE_GET_INFO, p.DEVICE_INFO.pack(16, 0, 0, 0))
    _, flags, nregions, nirqs = p.DEVICE_INFO.unpack(body)
    assert flags == p.DEVICE_FLAGS_PCI | p.DEVICE_FLAGS_RESET and nregions == 9 and nirqs == 5
    _, body = client.call(p.DEVICE_GET_REGION_INFO, p.REGION_INFO.pack(32, 0, 0, 0, 0, 0))
    assert p.REGION_INFO.unpack(body)[4] == 8          # BAR0: 8 I/O ports of a 16550
    _, body = client.call(p.DEVICE_GET_REGION_INFO, p.REGION_INFO.pack(32, 0, 7, 0, 0, 0))
    assert p.REGION_INFO.unpack(body)[4] == 256        # config space
    _, body = client.call(p.DEVICE_GET_IRQ_INFO, p.IRQ_INFO.pack(16, 0, 0, 0))
    _, flags, _, count = p.IRQ_INFO.unpack(body)
    assert count == 1 and flags & p.IRQ_INFO_AUTOMASKED and flags & p.IRQ_INFO_MASKABLE
    _, body = client.call(p.DEVICE_GET_IRQ_INFO, p.IRQ_INFO.pack(16, 0, 2, 0))
    assert p.IRQ_INFO.unpack(body)[3] == 0             # no MSI-X: a legacy device


def test_config_space_is_pci_2_2(served):
    client, _, _ = served
    cfg = client.region_read(7, 0, 64)
    assert struct.unpack_from("<HH", cfg) == (0x1B36, 0x0002) and cfg[0x3D] == 1  # INTA#
    assert cfg[0x0B] == 0x07 and cfg[0x10] & 1                                    # serial, I/O BAR
    client.region_write(7, 4, struct.pack("<H", 0x0403))  # what pci_intx_mask_broken() writes
    assert struct.unpack("<H", client.region_read(7, 4, 2))[0] == 0x0003        # bit 10 stays 0


def test_intx_is_signalled_once_and_again_on_unmask_only_while_asserted(served):
    client, device, _ = served
    efd = eventfd()
    h, _ = client.set_irqs(p.IRQ_SET_DATA_EVENTFD | p.IRQ_SET_ACTION_TRIGGER, fds=[efd])
    assert not h.flags & p.ERROR
    client.region_write(0, 1, b"\x01")            # IER: RX data available
    device.push(b"x")                             # RX empty, no gap: raised at once
    assert device.intx.level and eventfd_count(efd) == 1 and device.intx.masked
    client.set_irqs(p.IRQ_SET_DATA_NONE | p.IRQ_SET_ACTION_UNMASK)   # still asserted: again
    assert eventfd_count(efd) == 1 and device.counters["resignalled"] == 1
    assert client.region_read(0, 0, 1) == b"x"    # the guest reads: serviced, deasserts
    assert not device.intx.level and device.counters["serviced"] == 1
    client.set_irqs(p.IRQ_SET_DATA_NONE | p.IRQ_SET_ACTION_UNMASK)   # acked: no spurious one
    assert eventfd_count(efd) == 0 and device.counters["unmasks"] == 2
    os.close(efd)


def test_posted_writes_get_no_reply(served):
    client, device, _ = served
    client.region_write(0, 7, b"\x5a", posted=True)   # scratch register, no reply
    assert client.region_read(0, 7, 1) == b"\x5a"      # the next reply is the read's


def test_errors_are_replies_not_crashes(served, caplog):
    client, _, _ = served
    caplog.set_level(logging.WARNING)
    h, _ = client.call(p.REGION_READ, p.REGION_ACCESS.pack(6, 0, 4))   # past the 8-byte BAR
    assert h.flags & p.ERROR and h.error == errno.EINVAL
    h, _ = client.call(99)                                             # unknown command
    assert h.flags & p.ERROR and h.error == errno.ENOSYS
    h, _ = client.call(p.DEVICE_GET_REGION_INFO, b"\0" * 4)            # short payload
    assert h.flags & p.ERROR and h.error == errno.EINVAL
    h, _ = client.call(p.DEVICE_GET_REGION_INFO, p.REGION_INFO.pack(32, 0, 42, 0, 0, 0))
    assert h.flags & p.ERROR                                           # no such region
    assert client.region_read(7, 0, 2) == b"\x36\x1b"                  # still serving
    assert len([r for r in caplog.records if "failed" in r.message]) == 4


def test_dma_map_unmap_accepted_and_fds_closed(served):
    client, _, conn = served
    r, w = os.pipe()
    h, _ = client.call(p.DMA_MAP, p.DMA_MAP_STRUCT.pack(32, 3, 0, 0x1000, 0x1000), fds=[r])
    assert not h.flags & p.ERROR and conn.dma == {0x1000: 0x1000}
    h, _ = client.call(p.DMA_MAP, p.DMA_MAP_STRUCT.pack(32, 3, 0, 0x1000, 0x1000))
    assert h.error == errno.EEXIST
    h, body = client.call(p.DMA_UNMAP, p.DMA_UNMAP_STRUCT.pack(24, 0, 0x1000, 0x1000))
    assert not h.flags & p.ERROR and body == p.DMA_UNMAP_STRUCT.pack(24, 0, 0x1000, 0x1000)
    os.close(w)


@pytest.mark.parametrize("raw", [
    p.HEADER.pack(1, 1, 8, 0, 0),                  # size smaller than the header
    p.HEADER.pack(1, 1, 1 << 30, 0, 0),            # absurdly large
    p.HEADER.pack(1, 9, 64, 0, 0) + b"\0" * 10,    # truncated: client leaves mid-message
    b"\x01\x02\x03",                               # not even a header
])
def test_unframeable_messages_close_that_connection_only(raw, caplog):
    a, b = socket.socketpair()
    device = LegacyUart(gap=0.0)
    conn = Connection(b, device)
    t = threading.Thread(target=conn.serve, daemon=True)
    t.start()
    a.sendall(raw)
    a.shutdown(socket.SHUT_WR)
    t.join(timeout=5)
    assert not t.is_alive()
    assert a.recv(16) == b""                      # closed cleanly, nothing half-sent
    device.close()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64), st.integers(min_value=0, max_value=20))
def test_fuzz_every_decoder_raises_only_protocol_errors(payload, command):
    for parse in (p.parse_version, p.parse_dma_map, p.parse_dma_unmap, p.parse_irq_set,
                  p.parse_write_multi, lambda b: p.parse_region_access(b, True),
                  lambda b: p.parse_region_access(b, False), lambda b: p.parse_index(b, "x")):
        try:
            parse(payload)
        except p.ProtocolError:
            pass
    try:
        p.parse_header(payload[:16])
    except p.BadMessage:
        pass


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20), st.binary(max_size=48), st.integers(0, 0x3F)),
                max_size=12))
def test_fuzz_the_server_with_well_framed_garbage(messages):
    """Any sequence of framed messages gets a reply (or none if no-reply) and the
    connection stays up: a final config read still answers."""
    a, b = socket.socketpair()
    device = LegacyUart(gap=0.0)
    t = threading.Thread(target=Connection(b, device).serve, daemon=True)
    t.start()
    client = Client(a)
    a.settimeout(5)
    try:
        for command, payload, flags in messages:
            flags &= ~p.NO_REPLY
            client.send(command, payload, flags=flags & p.TYPE_MASK)
            h, _ = client.recv()
            assert h.command == command
        assert client.region_read(7, 0, 2) == b"\x36\x1b"
    finally:
        a.close()
        t.join(timeout=5)
        device.close()

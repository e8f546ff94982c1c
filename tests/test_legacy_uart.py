"""The legacy device's semantics: PCI 2.2 vs 2.3 config space, the 16550 registers,
pacing, and the INTx line (no socket: the device model alone)."""

import os
import struct

import pytest

from device_models.control import handle
from device_models.legacy_uart import LegacyUart
from device_models.pci import CMD_INTX_DISABLE, COMMAND, STATUS

pytestmark = pytest.mark.unit


@pytest.fixture
def uart():
    d = LegacyUart(gap=0.0)
    yield d
    d.close()


def cmd(d):
    return struct.unpack("<H", d.config_read(COMMAND, 2))[0]


def test_pci_2_2_command_bit_10_is_read_only_and_status_bit_3_never_set(uart):
    uart.config_write(COMMAND, struct.pack("<H", 0x0407))
    assert cmd(uart) == 0x0007 and uart.counters["intx_disable_writes"] == 1
    uart.region_write(0, 1, b"\x01")
    uart.push(b"a")
    assert uart.intx.level
    assert not struct.unpack("<H", uart.config_read(STATUS, 2))[0] & 0x08


def test_pci_2_3_twin_masks_intx_in_the_command_register():
    d = LegacyUart(pci_2_3=True, gap=0.0)
    try:
        d.region_write(0, 1, b"\x01")
        d.push(b"a")
        assert d.intx.level and struct.unpack("<H", d.config_read(STATUS, 2))[0] & 0x08
        d.config_write(COMMAND, struct.pack("<H", CMD_INTX_DISABLE | 1))
        assert cmd(d) & CMD_INTX_DISABLE and not d.intx.level   # masked at the device
        d.config_write(COMMAND, struct.pack("<H", 1))
        assert d.intx.level
    finally:
        d.close()


def test_bar_sizing_reads_back_the_size_mask(uart):
    uart.config_write(0x10, b"\xff\xff\xff\xff")
    assert struct.unpack("<I", uart.config_read(0x10, 4))[0] == 0xFFFFFFF9  # 8 ports, I/O


def test_16550_registers(uart):
    assert uart.region_read(0, 2, 1) == b"\x01"          # IIR: no interrupt
    assert uart.region_read(0, 5, 1)[0] & 0x60 == 0x60   # LSR: THR empty, idle
    uart.region_write(0, 3, b"\x80")                     # DLAB
    uart.region_write(0, 0, b"\x0c")
    assert uart.region_read(0, 0, 1) == b"\x0c"          # divisor latch, not RBR
    uart.region_write(0, 3, b"\x03")
    uart.push(b"hi")
    assert uart.region_read(0, 5, 1)[0] & 1              # data ready
    assert uart.region_read(0, 0, 1) == b"h"


def test_thre_interrupt_is_raised_by_enabling_it_and_cleared_by_reading_iir(uart):
    uart.region_write(0, 1, b"\x02")
    assert uart.intx.level and uart.region_read(0, 2, 1) == b"\x02"
    assert not uart.intx.level


def test_paced_mode_holds_the_next_byte_until_the_previous_is_read(uart):
    uart.region_write(0, 1, b"\x01")
    uart.push(b"abc")
    assert len(uart.rx) == 1 and len(uart.backlog) == 2
    assert uart.region_read(0, 0, 1) == b"a" and uart.counters["serviced"] == 1
    assert uart.counters["raised"] >= 1


def test_free_mode_fills_the_fifo_at_once():
    d = LegacyUart(gap=0.0, paced=False)
    try:
        d.push(b"abcdef")
        assert len(d.rx) == 6
    finally:
        d.close()


def test_intx_state_machine_with_an_eventfd(uart):
    efd = os.eventfd(0, os.EFD_NONBLOCK)
    uart.intx.set_trigger(efd)
    uart.region_write(0, 1, b"\x01")
    uart.push(b"a")
    assert os.read(efd, 8) == struct.pack("<Q", 1) and uart.intx.masked
    uart.push(b"b")                                # queued: the line is already asserted
    uart.region_read(0, 0, 1)                      # a read, b fed (gap 0), still asserted
    uart.intx.unmask()
    assert os.read(efd, 8) == struct.pack("<Q", 1)  # re-signalled on unmask
    uart.intx.set_trigger(None)


def test_control_requests(uart):
    assert handle(uart, {"op": "push", "n": 2})["ok"]
    snap = handle(uart, {"op": "counters"})
    assert snap["counters"]["pushed"] == 2 and snap["pci_2_3"] is False
    with pytest.raises(ValueError):
        handle(uart, {"op": "explode"})

"""A PCI function as a vfio-user server sees it: type-0 config space with write masks,
a region table, and one level-triggered INTx line under VFIO's INTx protocol.

A device model subclasses PciFunction, fills in its IDs and BARs, implements bar_read /
bar_write, and calls set_irq_level() whenever its interrupt condition changes.
"""

from __future__ import annotations

import errno
import os
import struct
import threading
import time

from .vfio_user import protocol as p

COMMAND, STATUS = 0x04, 0x06
CMD_IO, CMD_MEMORY, CMD_MASTER, CMD_PARITY, CMD_SERR, CMD_INTX_DISABLE = 1, 2, 4, 0x40, 0x100, 0x400
STATUS_INTERRUPT = 0x08
BAR0, INTERRUPT_LINE, INTERRUPT_PIN = 0x10, 0x3C, 0x3D


class IntxLine:
    """Level INTx under VFIO's protocol: signal the trigger eventfd when the line asserts
    while unmasked, then stay masked (AUTOMASKED) until UNMASK; on UNMASK, signal again
    if the line is still asserted (a level interrupt is never lost, only delayed)."""

    def __init__(self, counters: dict):
        self.level = False
        self.masked = False
        self.trigger: int | None = None
        self.counters = counters
        self._asserted_since: float | None = None

    def _signal(self) -> None:
        self.masked = True
        if self.trigger is not None:
            os.write(self.trigger, struct.pack("<Q", 1))
            self.counters["signalled"] += 1

    def set_level(self, level: bool) -> None:
        now = time.monotonic()
        if level and not self.level:
            self.counters["raised"] += 1
            self._asserted_since = now
        elif not level and self.level and self._asserted_since is not None:
            self.counters["asserted_s"] += now - self._asserted_since
            self._asserted_since = None
        self.level = level
        if level and not self.masked:
            self._signal()

    def unmask(self) -> None:
        self.counters["unmasks"] += 1
        self.masked = False
        if self.level:
            self.counters["resignalled"] += 1
            self._signal()

    def mask(self) -> None:
        self.masked = True

    def set_trigger(self, fd: int | None) -> None:
        if self.trigger is not None:
            os.close(self.trigger)
        self.trigger = fd
        self.masked = False
        if fd is not None and self.level:
            self._signal()

    def asserted_now_s(self) -> float:
        return time.monotonic() - self._asserted_since if self._asserted_since is not None else 0.0


class PciFunction:
    """Config space, regions and INTx; the device-specific part is in the subclass."""

    vendor_id = 0
    device_id = 0
    class_code = 0           # 24 bits: class, subclass, prog-if
    revision = 0
    bar_sizes: tuple[int, ...] = (0, 0, 0, 0, 0, 0)
    bar_io: tuple[bool, ...] = (False,) * 6

    def __init__(self, pci_2_3: bool = False):
        self.pci_2_3 = pci_2_3
        self.lock = threading.RLock()
        self.counters = {"raised": 0, "signalled": 0, "resignalled": 0, "unmasks": 0,
                         "serviced": 0, "asserted_s": 0.0, "config_writes": 0,
                         "command_writes": 0, "intx_disable_writes": 0}
        self.intx = IntxLine(self.counters)
        self.config = bytearray(256)
        self.write_mask = bytearray(256)
        self._init_config()

    # -- config space ---------------------------------------------------------------------
    def _init_config(self) -> None:
        c = self.config
        struct.pack_into("<HH", c, 0, self.vendor_id, self.device_id)
        struct.pack_into("<HH", c, 0x2C, self.vendor_id, self.device_id)  # subsystem
        c[0x08] = self.revision
        c[0x09:0x0C] = self.class_code.to_bytes(3, "little")
        c[INTERRUPT_PIN] = 1  # INTA#
        cmd_mask = CMD_IO | CMD_MEMORY | CMD_MASTER | CMD_PARITY | CMD_SERR
        if self.pci_2_3:
            cmd_mask |= CMD_INTX_DISABLE  # PCI 2.3: INTx can be masked in the command register
        struct.pack_into("<H", self.write_mask, COMMAND, cmd_mask)
        self.write_mask[INTERRUPT_LINE] = 0xFF
        for i, size in enumerate(self.bar_sizes):
            if size:
                c[BAR0 + 4 * i] = 0x01 if self.bar_io[i] else 0x00
                struct.pack_into("<I", self.write_mask, BAR0 + 4 * i, (~(size - 1)) & 0xFFFFFFFC)

    def config_read(self, offset: int, count: int) -> bytes:
        with self.lock:
            data = bytearray(self.config[offset:offset + count])
            # Status bit 3 (interrupt status) exists from PCI 2.3 on; a 2.2 device never sets it.
            if self.pci_2_3 and offset <= STATUS < offset + count and self.intx.level:
                data[STATUS - offset] |= STATUS_INTERRUPT
            return bytes(data)

    def config_write(self, offset: int, data: bytes) -> None:
        with self.lock:
            self.counters["config_writes"] += 1
            end = offset + len(data)
            if offset <= COMMAND < end:
                self.counters["command_writes"] += 1
            # A write setting bit 10 (INTx disable): what vfio's PCI 2.3 path does per
            # interrupt, and what Linux's pci_intx_mask_broken() probe does once at boot.
            if offset <= COMMAND + 1 < end and data[COMMAND + 1 - offset] & (CMD_INTX_DISABLE >> 8):
                self.counters["intx_disable_writes"] += 1
            for i, b in enumerate(data):
                m = self.write_mask[offset + i]
                self.config[offset + i] = (self.config[offset + i] & ~m) | (b & m)
            self._intx_update()

    def command(self) -> int:
        return struct.unpack_from("<H", self.config, COMMAND)[0]

    # -- interrupts -----------------------------------------------------------------------
    def set_irq_level(self, level: bool) -> None:
        """The device's interrupt condition; the line also honours INTx-disable on 2.3."""
        with self.lock:
            self._device_level = level
            self._intx_update()

    _device_level = False

    def _intx_update(self) -> None:
        disabled = self.pci_2_3 and self.command() & CMD_INTX_DISABLE
        self.intx.set_level(self._device_level and not disabled)

    # -- vfio-user entry points (called by the server) ------------------------------------
    device_flags = p.DEVICE_FLAGS_RESET | p.DEVICE_FLAGS_PCI

    def region_info(self, index: int) -> tuple[int, int]:
        rw = p.REGION_INFO_FLAG_READ | p.REGION_INFO_FLAG_WRITE
        if index == p.PCI_CONFIG_REGION:
            return rw, 256
        if 0 <= index < 6 and self.bar_sizes[index]:
            return rw, self.bar_sizes[index]
        if 0 <= index < p.PCI_NUM_REGIONS:
            return 0, 0
        raise p.ProtocolError(errno.EINVAL, f"no region {index}")

    def _check(self, index: int, offset: int, count: int) -> None:
        _, size = self.region_info(index)
        if count == 0 or offset + count > size:
            raise p.ProtocolError(errno.EINVAL, f"region {index}: [{offset}, +{count}) outside {size} bytes")

    def region_read(self, index: int, offset: int, count: int) -> bytes:
        self._check(index, offset, count)
        if index == p.PCI_CONFIG_REGION:
            return self.config_read(offset, count)
        with self.lock:
            return self.bar_read(index, offset, count)

    def region_write(self, index: int, offset: int, data: bytes) -> None:
        self._check(index, offset, len(data))
        if index == p.PCI_CONFIG_REGION:
            self.config_write(offset, data)
            return
        with self.lock:
            self.bar_write(index, offset, data)

    def irq_info(self, index: int) -> tuple[int, int]:
        if index == p.PCI_INTX_IRQ:
            return p.IRQ_INFO_EVENTFD | p.IRQ_INFO_MASKABLE | p.IRQ_INFO_AUTOMASKED, 1
        if 0 <= index < p.PCI_NUM_IRQS:
            return p.IRQ_INFO_EVENTFD, 0  # no MSI/MSI-X: a legacy device; no err/req
        raise p.ProtocolError(errno.EINVAL, f"no IRQ index {index}")

    def set_irqs(self, s: p.IrqSet, fds: list[int]) -> list[int]:
        """Apply SET_IRQS; returns the fds it did not keep (the server closes them)."""
        with self.lock:
            if s.index != p.PCI_INTX_IRQ:
                return fds  # nothing to signal on other indexes: accept and drop
            if s.action == p.IRQ_SET_ACTION_TRIGGER and s.data_type == p.IRQ_SET_DATA_EVENTFD:
                keep = fds[0] if fds and s.count else None
                self.intx.set_trigger(keep)
                return fds[1:] if keep is not None else fds
            if s.action == p.IRQ_SET_ACTION_TRIGGER and s.data_type == p.IRQ_SET_DATA_NONE and s.count == 0:
                self.intx.set_trigger(None)  # count 0, DATA_NONE: disable the index
                return fds
            if s.action == p.IRQ_SET_ACTION_UNMASK and s.data_type != p.IRQ_SET_DATA_EVENTFD:
                self.intx.unmask()
                return fds
            if s.action == p.IRQ_SET_ACTION_MASK and s.data_type != p.IRQ_SET_DATA_EVENTFD:
                self.intx.mask()
                return fds
            # MASK/UNMASK eventfds (KVM resampling) are not used under TCG: accept, drop.
            return fds

    def reset(self) -> None:
        with self.lock:
            self.config = bytearray(256)
            self._init_config()
            self._device_level = False
            self.device_reset()
            self._intx_update()

    def disconnected(self) -> None:
        """Client gone: close its IRQ fds, keep the device state (spec: Client Disconnection)."""
        with self.lock:
            self.intx.set_trigger(None)

    # -- for subclasses -------------------------------------------------------------------
    def bar_read(self, index: int, offset: int, count: int) -> bytes:
        return bytes(count)

    def bar_write(self, index: int, offset: int, data: bytes) -> None:
        pass

    def device_reset(self) -> None:
        pass

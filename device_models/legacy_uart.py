"""The legacy device: a PCI 2.2 16550A UART, as old serial cards were.

Config space is type 0 with the IDs of QEMU's pci-serial (1b36:0002), so Linux's in-tree
8250_pci binds to it in L2 with no out-of-tree driver; but unlike pci-serial the command
register's bit 10 (INTx disable) is read-only 0 and the status register's bit 3 is never
set: lspci shows DisINTx-, and Linux's pci_intx_mask_broken() probe finds it non-2.3.
pci_2_3=True makes the twin that has both, for A/B runs.

Interrupts: RX data available (and THR empty, as a 16550 does). The rig feeds bytes
through the control channel; in paced mode a byte enters the RX buffer only once the
previous one was read and a gap has passed, so the device never asserts while the
previous interrupt is in flight (docs/mechanism.md on QEMU's XIVE); free mode feeds at once.
"""

from __future__ import annotations

import collections
import threading
import time

from .pci import PciFunction

RBR_THR, IER, IIR_FCR, LCR, MCR, LSR, MSR, SCR = range(8)
IER_RDI, IER_THRI = 0x01, 0x02
IIR_NO_INT, IIR_THRI, IIR_RDI, IIR_FIFO = 0x01, 0x02, 0x04, 0xC0
LSR_DR, LSR_THRE, LSR_TEMT = 0x01, 0x20, 0x40
LCR_DLAB = 0x80
FIFO_DEPTH = 16


class LegacyUart(PciFunction):
    vendor_id, device_id = 0x1B36, 0x0002   # QEMU's PCI serial IDs: 8250_pci knows them
    class_code = 0x070002                   # serial controller, 16550-compatible
    revision = 1
    bar_sizes = (8, 0, 0, 0, 0, 0)
    bar_io = (True, False, False, False, False, False)

    def __init__(self, pci_2_3: bool = False, gap: float = 0.02, paced: bool = True):
        self.paced, self.gap = paced, gap
        self.rx: collections.deque[int] = collections.deque()
        self.backlog: collections.deque[int] = collections.deque()
        self.regs = {IER: 0, LCR: 0, MCR: 0, SCR: 0, "DLL": 1, "DLM": 0, "FCR": 0}
        self.thri_pending = False
        self.tx_bytes = 0
        self.last_serviced = 0.0
        self.events: list[tuple[float, str]] = []   # (time, what) for the timeline
        super().__init__(pci_2_3)
        self._feeder_wake = threading.Condition(self.lock)
        self._stop = False
        self._feeder = threading.Thread(target=self._feed, name="uart-feeder", daemon=True)
        self._feeder.start()

    # -- what the rig does (control channel) --------------------------------------------
    def push(self, data: bytes) -> None:
        with self.lock:
            self.backlog.extend(data)
            self.counters.setdefault("pushed", 0)
            self.counters["pushed"] += len(data)
            if self._feed_some() is not None:   # what cannot go in now, the feeder delivers
                self._feeder_wake.notify()

    def _feed(self) -> None:
        """Moves bytes from the backlog into RX: paced (RX empty + gap) or at once."""
        with self.lock:
            while not self._stop:
                wait = self._feed_some()
                self._feeder_wake.wait(timeout=wait)

    def _feed_some(self) -> float | None:
        if not self.backlog:
            return None
        if not self.paced:
            while self.backlog and len(self.rx) < FIFO_DEPTH:
                self.rx.append(self.backlog.popleft())
            self._update()
            return 0.001 if self.backlog else None
        if self.rx:
            return None  # the previous byte is not read yet: the read wakes us
        left = self.last_serviced + self.gap - time.monotonic()
        if left > 0:
            return left
        self.rx.append(self.backlog.popleft())
        self.events.append((time.monotonic(), "raise"))
        self._update()
        return None

    def close(self) -> None:
        with self.lock:
            self._stop = True
            self._feeder_wake.notify()
        self._feeder.join(timeout=2)

    # -- 16550A registers (BAR0, I/O) ----------------------------------------------------
    def _iir(self) -> int:
        fifo = IIR_FIFO if self.regs["FCR"] & 1 else 0
        if self.regs[IER] & IER_RDI and self.rx:
            return IIR_RDI | fifo
        if self.regs[IER] & IER_THRI and self.thri_pending:
            return IIR_THRI | fifo
        return IIR_NO_INT | fifo

    def _update(self) -> None:
        self.set_irq_level(not self._iir() & IIR_NO_INT)

    def bar_read(self, index: int, offset: int, count: int) -> bytes:
        return bytes(self._read_reg(offset + i) for i in range(count))

    def bar_write(self, index: int, offset: int, data: bytes) -> None:
        for i, b in enumerate(data):
            self._write_reg(offset + i, b)

    def _read_reg(self, reg: int) -> int:
        dlab = self.regs[LCR] & LCR_DLAB
        if reg == RBR_THR:
            if dlab:
                return self.regs["DLL"]
            if not self.rx:
                return 0
            value = self.rx.popleft()
            if not self.rx:
                self.counters["serviced"] += 1   # the guest read the data: serviced
                self.last_serviced = time.monotonic()
                self.events.append((self.last_serviced, "serviced"))
                self._update()
                if self._feed_some() is not None:  # after the gap, the feeder does it
                    self._feeder_wake.notify()
            self._update()
            return value
        if reg == IER:
            return self.regs["DLM"] if dlab else self.regs[IER]
        if reg == IIR_FCR:
            iir = self._iir()
            if iir & 0x0F == IIR_THRI:
                self.thri_pending = False   # reading IIR clears a THRE interrupt
                self._update()
            return iir
        if reg == LSR:
            return (LSR_DR if self.rx else 0) | LSR_THRE | LSR_TEMT
        if reg == MSR:
            return 0xB0  # CTS, DSR, DCD: a cable is attached
        return self.regs.get(reg, 0)

    def _write_reg(self, reg: int, value: int) -> None:
        dlab = self.regs[LCR] & LCR_DLAB
        if reg == RBR_THR:
            if dlab:
                self.regs["DLL"] = value
                return
            self.tx_bytes += 1          # transmitted at once
            self.thri_pending = True
        elif reg == IER:
            if dlab:
                self.regs["DLM"] = value
                return
            if value & IER_THRI and not self.regs[IER] & IER_THRI:
                self.thri_pending = True  # enabling THRE with an empty THR raises it
            self.regs[IER] = value & 0x0F
        elif reg == IIR_FCR:
            self.regs["FCR"] = value & 0xC9
            if value & 0x02:
                self.rx.clear()
        elif reg in (LCR, MCR, SCR):
            self.regs[reg] = value
        self._update()

    def device_reset(self) -> None:
        self.rx.clear()
        self.regs.update({IER: 0, LCR: 0, MCR: 0, SCR: 0, "DLL": 1, "DLM": 0, "FCR": 0})
        self.thri_pending = False

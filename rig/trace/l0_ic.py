"""L0 QEMU's view of the device's interrupt: trace events of the INTx line and the
interrupt controller, switched on over QMP for the drive, read back from QEMU's log.

One class per way a machine presents an interrupt controller (its `family`, which the
machine profile names for each --ic): which trace events to switch on, how to turn their
lines into PathEvents for the device's source, and which line of HMP `info pic` shows
that source's state. The source number is the hwirq L1 reports for its vfio-intx line:
the LISN on pseries (XIVE and XICS), the global XIVE number on PowerNV, the IO-APIC pin
on x86.

QEMU runs with -msg timestamp=on, so every trace line starts with a UTC wall-clock time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from rig.trace.path import Lane, PathEvent

LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z (\w+) ?(.*)$")


def parse_log(text: str, since_wall: float) -> list[tuple[float, str, str]]:
    """(wall time, event name, its arguments) for every trace line from since_wall on."""
    out = []
    for line in text.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        wall = datetime.fromisoformat(m.group(1) + "+00:00").timestamp()
        if wall >= since_wall:
            out.append((wall, m.group(2), m.group(3)))
    return out


def _int(text: str) -> int:
    return int(text, 0)


@dataclass(frozen=True)
class StartState:
    """The source's `info pic` lines when the trace began, and when that was (drive time).
    Only read where the line existed already: a chain restored from a snapshot, whose
    source may have been left pending before the snapshot was taken."""

    text: str
    t: float


class IcTrace:
    name = ""          # the controller (result.json's interrupt_path.ic)
    family = ""        # the machine's way of presenting it
    events: tuple[str, ...] = ()

    def path_events(self, lines: list[tuple[float, str, str]], source: int,
                    t0_wall: float, start: StartState | None = None) -> list[PathEvent]:
        raise NotImplementedError

    def locate(self, info_pic: str, source: int) -> None:
        """Learn from `info pic` (read before the trace is) how the trace numbers the source,
        where that is not the hwirq itself."""

    def state(self, info_pic: str, source: int) -> str:
        """The lines of `info pic` about the source (empty if it prints none)."""
        pats = self.state_patterns(source)
        return "\n".join(ln.rstrip() for ln in info_pic.splitlines()
                         if any(re.search(p, ln) for p in pats))

    def state_patterns(self, source: int) -> list[str]:
        return []


# XIVE ESB management offsets (the low 12 bits of an ESB page access) and what they do.
ESB_OPS = {0x800: "get", 0xc00: "unmask", 0xd00: "mask", 0xe00: "set-pq-10", 0xf00: "set-pq-11"}
PQ_AFTER = {"unmask": 0b00, "mask": 0b01, "set-pq-10": 0b10, "set-pq-11": 0b11}
PQ_NAMES = {0b00: "PQ=00 (ready)", 0b01: "PQ=01 (masked)", 0b10: "PQ=10 (pending, no EOI yet)",
            0b11: "PQ=11 (pending, another queued)"}
# QEMU's `info pic` line of a XIVE source: its type, then P and Q ('-' when clear), then
# 'A' if the line is asserted: "00001204 LSI P-A ...".
PIC_PQ = re.compile(r"\b(?:LSI|MSI)\s+([P-])([Q-])")


def _esb_event(t: float, name: str, offset: int, value: str) -> tuple[PathEvent, str]:
    """A guest's access to a source's ESB page: the event and the operation it is."""
    op = ESB_OPS.get(offset & 0xf00, "eoi" if offset < 0x400 else f"esb@{offset:#x}")
    return PathEvent(t, Lane.L0_IC, op, f"ESB {name[-4:]} {offset:#05x}, old PQ/value {value}"), op


def _pq_after(op: str, pq: int | None) -> int | None:
    if op in PQ_AFTER:
        return PQ_AFTER[op]
    return 0b00 if op == "eoi" else pq


class SourcePQ:
    """One XIVE source's PQ bits as far as the trace shows them: P set when it forwards an
    assertion, then whatever L1's ESB accesses (EOI, mask, unmask) make of them. An LSI is
    forwarded only from PQ=00: the bits say why one was held back."""

    ESB = re.compile(r"@(\w+) IRQ (\w+) val=(\w+)")

    def __init__(self, start: StartState | None = None) -> None:
        self.pq: int | None = None
        self.pending_since: float | None = None
        self.inherited = False       # pending already when the trace began
        found = PIC_PQ.findall(start.text) if start else []
        if start and found:          # the last line is the source's own (PowerNV: its PHB block's)
            p, q = found[-1]
            self.pq = (p == "P") << 1 | (q == "Q")
            self.pending_since, self.inherited = start.t, self.pq in (0b10, 0b11)

    def forwarded(self, t: float) -> None:
        self.pq, self.pending_since, self.inherited = 0b10, t, False

    def held(self, t: float) -> PathEvent:
        why = PQ_NAMES.get(self.pq, "PQ unknown") if self.pq is not None else "PQ unknown"
        if self.pq in (0b10, 0b11) and self.pending_since is not None:
            why += (f" since before the trace began (`info pic` at t={self.pending_since:.2f} s)"
                    if self.inherited else f" since t={self.pending_since:.2f} s")
        return PathEvent(t, Lane.L0_IC, "held", f"source not forwarded: {why}")

    def esb(self, t: float, name: str, args: str, number: int | None) -> PathEvent | None:
        """The event of an ESB access to source `number` (as the trace numbers it), or None."""
        m = self.ESB.search(args)
        if not m or number is None or _int(m.group(2)) != number:
            return None
        event, op = _esb_event(t, name, _int(m.group(1)) & 0xfff, m.group(3))
        self.pq = _pq_after(op, self.pq)
        if self.pq in (0b00, 0b01):
            self.pending_since, self.inherited = None, False
        return event


ESB_EVENTS = ("xive_source_esb_read", "xive_source_esb_write")


class XiveTrace(IcTrace):
    """spapr XIVE: the LSI's level (spapr_xive_set_irq), whether the source forwarded it to
    the presenter (a xive_presenter_notify right after, in the same call), and the
    guest's ESB accesses to it (EOI, mask = PQ 01, unmask = PQ 00). An LSI is forwarded
    only from PQ=00: the PQ bits the rig tracks say why one was held back."""

    name = "xive"
    family = "spapr-xive"
    events = ("spapr_xive_set_irq", "xive_presenter_notify", *ESB_EVENTS)

    def path_events(self, lines, source, t0_wall, start=None):
        out: list[PathEvent] = []
        pq = SourcePQ(start)
        for i, (wall, name, args) in enumerate(lines):
            t = wall - t0_wall
            if name == "spapr_xive_set_irq":
                m = re.search(r"lisn=(\w+) val=(\d+)", args)
                if not m or _int(m.group(1)) != source:
                    continue
                if m.group(2) == "0":
                    out.append(PathEvent(t, Lane.L0_LINE, "deassert"))
                    continue
                out.append(PathEvent(t, Lane.L0_LINE, "assert"))
                nxt = lines[i + 1][1] if i + 1 < len(lines) else ""
                if nxt == "xive_presenter_notify":
                    out.append(PathEvent(t, Lane.L0_IC, "notify", "source forwarded it (P set)"))
                    pq.forwarded(t)
                else:
                    out.append(pq.held(t))
            elif name in ESB_EVENTS and (event := pq.esb(t, name, args, source)):
                out.append(event)
        return out

    def state_patterns(self, source):
        return [rf"^\s+{source:08x}\s"]


# The virtio console took a byte from the rig's socket: it puts it in the receive queue,
# sets its ISR and asserts INTx (QEMU has no trace of the PHB4 LSI's level itself).
VIRTIO_CONSOLE_EVENTS = ("virtio_console_chr_read",)


class PnvXiveTrace(IcTrace):
    """PowerNV XIVE, driven natively: the PHB4's own XIVE source holds the device's LSI.
    QEMU traces no level for it; what it traces is the source forwarding an assertion to
    the interrupt controller (pnv_phb4_xive_notify*, only from PQ=00) and L1's ESB accesses
    to the source (EOI, mask, unmask). The ESB trace numbers the source within its PHB's
    source block, whose range `info pic` prints ("PHB4[0:1] Source 000fd800 .. 000fdfff":
    global 0xfdff8 is local 0x7f8); the blocks differ in size between PHBs."""

    name = "xive"
    family = "pnv-xive"
    events = ("pnv_phb4_xive_notify", "pnv_phb4_xive_notify_ic", *ESB_EVENTS, *VIRTIO_CONSOLE_EVENTS)
    BLOCK = re.compile(r"^PHB\S* Source ([0-9a-f]+) \.\. ([0-9a-f]+)", re.M)

    def __init__(self) -> None:
        self.local: dict[int, int] = {}      # global source number -> its number in its block

    def _block(self, info_pic: str, source: int) -> tuple[int, str] | None:
        """(base, the block's lines) of the PHB source block holding the source."""
        heads = list(self.BLOCK.finditer(info_pic))
        for i, m in enumerate(heads):
            base, last = int(m.group(1), 16), int(m.group(2), 16)
            if base <= source <= last:
                end = heads[i + 1].start() if i + 1 < len(heads) else len(info_pic)
                return base, info_pic[m.end():end]
        return None

    def locate(self, info_pic, source):
        found = self._block(info_pic, source)
        if found:
            self.local[source] = source - found[0]

    def state(self, info_pic, source):
        """The source's line in its PHB block (PQ bits, line level: "LSI P-A" when pending
        and asserted), and its EAT entry."""
        found = self._block(info_pic, source)
        lines = [ln.rstrip() for ln in info_pic.splitlines() if re.match(rf"^\s+{source:08x}\s", ln)]
        if found:
            base, block = found
            lines += [ln.rstrip() for ln in block.splitlines() if re.match(rf"^\s+{source - base:08x}\s", ln)]
        return "\n".join(lines)

    def path_events(self, lines, source, t0_wall, start=None):
        out: list[PathEvent] = []
        local = self.local.get(source)
        pq = SourcePQ(start)
        for i, (wall, name, args) in enumerate(lines):
            t = wall - t0_wall
            if name in VIRTIO_CONSOLE_EVENTS:
                # The device asserted (device_path_events puts it in the line's lane); it was
                # forwarded if the source notified in the same call (the next lines, same ms).
                if not any(self._notifies(ln, source) for ln in lines[i + 1:i + 4] if ln[0] - wall < 0.002):
                    out.append(pq.held(t))
            elif self._notifies((wall, name, args), source):
                out.append(PathEvent(t, Lane.L0_IC, "notify", "PHB4 source forwarded it to the IC (P set)"))
                pq.forwarded(t)
            elif name in ESB_EVENTS and (event := pq.esb(t, name, args, local)):
                out.append(event)
        return out

    @staticmethod
    def _notifies(line: tuple[float, str, str], source: int) -> bool:
        _wall, name, args = line
        if not name.startswith("pnv_phb4_xive_notify"):
            return False
        m = re.search(r"data=(\w+)", args)
        return m is not None and _int(m.group(1)) & 0xffffff == source


class XicsTrace(IcTrace):
    """spapr XICS: the ICS sees the LSI change (no level in the trace), tries to deliver
    it to an ICP; L1 accepts (XIRR), EOIs it, and masks/unmasks by priority 0xff."""

    name = "xics"
    family = "xics"
    events = ("xics_ics_set_irq_lsi", "xics_icp_irq", "xics_icp_accept", "xics_icp_eoi",
              "xics_ics_write_xive", "xics_ics_reject")

    def path_events(self, lines, source, t0_wall, start=None):
        out: list[PathEvent] = []
        for wall, name, args in lines:
            t = wall - t0_wall
            nums = [_int(x) for x in re.findall(r"0x[0-9a-fA-F]+|\b\d+\b", args)]
            if name == "xics_ics_set_irq_lsi" and len(nums) > 1 and nums[1] == source:
                out.append(PathEvent(t, Lane.L0_LINE, "line", "LSI level changed"))
            elif name == "xics_icp_irq" and len(nums) > 1 and nums[1] == source:
                out.append(PathEvent(t, Lane.L0_IC, "deliver", f"to server {nums[0]}"))
            elif name == "xics_icp_accept" and nums and nums[0] & 0xffffff == source:
                out.append(PathEvent(t, Lane.L0_IC, "accept", args))
            elif name == "xics_icp_eoi" and len(nums) > 1 and nums[1] & 0xffffff == source:
                out.append(PathEvent(t, Lane.L0_IC, "eoi", args))
            elif name == "xics_ics_write_xive" and nums and nums[0] == source:
                out.append(PathEvent(t, Lane.L0_IC, "mask" if nums[-1] == 0xff else "unmask", args))
            elif name == "xics_ics_reject" and nums and nums[0] == source:
                out.append(PathEvent(t, Lane.L0_IC, "reject", args))
        return out

    def state_patterns(self, source):
        return [rf"^\s+{source:x}\s+(LSI|MSI)"]


class IoapicTrace(IcTrace):
    """x86 IO-APIC: the pin's level, remote IRR set on delivery of a level interrupt and
    cleared by the EOI, and the re-assertion of a still-high line at EOI."""

    name = "ioapic"
    family = "ioapic"
    events = ("ioapic_set_irq", "ioapic_set_remote_irr", "ioapic_clear_remote_irr",
              "ioapic_eoi_delayed_reassert")

    def path_events(self, lines, source, t0_wall, start=None):
        out: list[PathEvent] = []
        vectors: set[int] = set()
        for wall, name, args in lines:
            t = wall - t0_wall
            nums = [int(x) for x in re.findall(r"-?\d+", args)]
            if name == "ioapic_set_irq" and len(nums) > 1 and nums[0] == source:
                out.append(PathEvent(t, Lane.L0_LINE, "assert" if nums[1] else "deassert"))
            elif name == "ioapic_set_remote_irr" and nums and nums[0] == source:
                out.append(PathEvent(t, Lane.L0_IC, "deliver", "remote IRR set"))
            elif name == "ioapic_clear_remote_irr" and nums and nums[0] == source:
                vectors.add(nums[-1])
                out.append(PathEvent(t, Lane.L0_IC, "eoi", f"remote IRR cleared (vector {nums[-1]})"))
            elif name == "ioapic_eoi_delayed_reassert" and nums and nums[0] in vectors:
                out.append(PathEvent(t, Lane.L0_IC, "reassert", args))
        return out

    def state_patterns(self, source):
        return [rf"^\s*pin {source}\s", r"^\s*(Remote )?IRR"]


IC_TRACES: dict[str, IcTrace] = {c.family: c for c in (XiveTrace(), PnvXiveTrace(), XicsTrace(), IoapicTrace())}

# The legacy device's INTx reaches L0 QEMU over vfio-user: QEMU's vfio code sees it come
# and sends the unmask back at the guest's EOI.
VFIO_USER_EVENTS = ("vfio_intx_interrupt", "vfio_pci_intx_eoi")



def device_path_events(lines, t0_wall) -> list[PathEvent]:
    """L0's events of the device's own line (vfio-user's INTx, the virtio console's input)."""
    out = vfio_user_path_events(lines, t0_wall)
    for wall, name, _args in lines:
        if name == "virtio_console_chr_read":
            out.append(PathEvent(wall - t0_wall, Lane.L0_LINE, "assert",
                                 "virtio console took the byte: ISR set, INTx up"))
    return out


def vfio_user_path_events(lines, t0_wall) -> list[PathEvent]:
    out = []
    for wall, name, _args in lines:
        if name == "vfio_intx_interrupt":
            out.append(PathEvent(wall - t0_wall, Lane.L0_LINE, "signal", "INTx from the vfio-user device"))
        elif name == "vfio_pci_intx_eoi":
            out.append(PathEvent(wall - t0_wall, Lane.L0_LINE, "unmask-device", "EOI: QEMU unmasks the device's INTx"))
    return out

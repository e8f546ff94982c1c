"""PathTracer: switches the interrupt-path tracing on for the drive and collects it after.

L0: QEMU trace events of the device's line and the interrupt controller, over QMP
(trace-event-set-state), plus HMP `info pic` for the source's state at the end.
L1: ftrace over SSH (rig.l1_trace), kept as l1-ftrace.txt. The rig: when it pushed a byte, when the consumer
read one. Tracing explains a verdict and never makes one: whatever fails here is noted in
result.json and the run goes on.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from rig.chain.verdict import Sample, Verdict
from rig.core import timeouts
from rig.core.errors import InfraError
from rig.core.kinds import Outcome
from rig.guests.l1 import L1Guest
from rig.trace import l1_ftrace as l1_trace
from rig.trace import proc_interrupts as interrupts

if TYPE_CHECKING:    # rig.chain.device imports the trace events from rig.trace
    from rig.chain.device import Device
from rig.trace.l0_ic import IC_TRACES, StartState, device_path_events, parse_log
from rig.trace.path import (
    InterruptPath,
    Lane,
    PathEvent,
    TraceClock,
    deliveries,
    explain,
    lane_summary,
    stopped_layer,
    trimmed,
)


class PathTracer:
    def __init__(self, l1: L1Guest, trace_family: str, device: Device, out: Path):
        self.l1, self.ic, self.device, self.out = l1, IC_TRACES[trace_family], device, out
        self.l0_events = (*self.ic.events, *device.l0_trace_events)
        self.notes: list[str] = []
        self.source: int | None = None     # L0's number for the line (LISN, IO-APIC pin)
        self.l1_irq: int | None = None
        self.t0 = self.t0_wall = self.armed_wall = 0.0
        self.marker_mono: float | None = None
        self.marker_t: float | None = None   # L0 drive time of L1's sync marker
        self.marker_rtt: float | None = None
        self.rig_events: list[PathEvent] = []
        self.l1_shift = 0.0
        self.seconds: dict[str, float] = {}
        self._l0_on = False
        self._collected = False
        self.start_state = ""           # the source's `info pic` lines at arm (restored chains)
        self.start_wall = 0.0

    # -- before the consumer starts, and at the drive's start -------------------------
    def arm(self) -> None:
        """Switch everything on before the consumer opens the device: L2's boot probes it
        (its 8250 driver raises an interrupt), and that can be the only one L1 ever gets."""
        t = time.monotonic()
        self.armed_wall = time.time()
        self._l0_switch(True)
        self._read_start_state()
        self.marker_mono = self._l1_start()
        self.seconds["arm"] = round(time.monotonic() - t, 3)

    def _read_start_state(self) -> None:
        """A chain restored from a snapshot has its vfio-intx line already, and its source
        may have been left pending before the snapshot was taken (the unfixed XIVE cell's
        one interrupt came at L2's boot): the source's state now is where the trace starts."""
        self._find_line(quiet=True)
        if self.source is not None:
            self.start_wall = time.time()
            self.start_state = self._info_pic()

    def begin(self) -> float:
        """The drive starts now: returns its t0 (time.monotonic()), the timeline's zero.
        A second drive on the same chain (the rig_chain fixture allows it) is traced anew."""
        if self._collected:
            self.rig_events, self.notes, self._collected = [], [], False
            self.arm()
        self.t0, self.t0_wall = time.monotonic(), time.time()
        if self.marker_mono is not None:
            self.marker_t = self.marker_mono - self.t0
        return self.t0

    def _find_line(self, quiet: bool = False) -> None:
        """L1's IRQ number for the device's vfio-intx line, and the controller's (its
        hwirq: the XIVE/XICS LISN, the IO-APIC pin), which is how L0's trace names it.
        Read after the drive: the line exists once the consumer enabled INTx (and at arm
        in a chain restored with its consumer running: quiet, as a cold one has none yet)."""
        try:
            text = self.l1.ssh.run("cat /proc/interrupts", timeout=timeouts.SSH_QUICK_S).stdout
        except InfraError as e:
            self.notes.append(f"L1's /proc/interrupts not read: {e}")
            return
        line = interrupts.find(interrupts.parse(text), l1_trace.HANDLER_NAME)
        if line is None or line.hwirq is None or not line.irq.isdigit():
            if not quiet:
                self.notes.append("no vfio-intx line in L1's /proc/interrupts: nothing to trace")
            return
        self.source, self.l1_irq = line.hwirq, int(line.irq)

    def _l0_switch(self, on: bool) -> None:
        for name in self.l0_events:
            try:
                self.l1.machine.cmd("trace-event-set-state", name=name, enable=on)
            except InfraError as e:
                self.notes.append(f"L0 trace event {name}: {e}")
        self._l0_on = on

    def _l1_start(self) -> float | None:
        r = self.l1.ssh.run(l1_trace.setup_script(self.ic.name), timeout=timeouts.TRACE_SETUP_S)
        if r.status != 0:
            self.notes.append(f"L1 ftrace unavailable: {(r.stderr or r.stdout).strip()[-200:]}")
            return None
        self.notes += [f"L1 ftrace: {line}" for line in r.stderr.strip().splitlines()[:10]]   # probes left out
        t_a = time.monotonic()
        r = self.l1.ssh.run(l1_trace.SYNC_COMMAND, timeout=timeouts.SSH_QUICK_S)
        t_b = time.monotonic()
        if r.status != 0:
            self.notes.append(f"L1 trace marker failed: {r.stderr.strip()[-200:]}")
            return None
        self.marker_rtt = t_b - t_a
        return (t_a + t_b) / 2

    # -- during the drive -----------------------------------------------------------
    def mark(self, kind: str, n: int = 1) -> None:
        """The rig's own events: "push" (a byte into the device), "serviced" (read)."""
        t = time.monotonic() - self.t0
        lane = Lane.DEVICE if kind == "push" else Lane.CONSUMER
        self.rig_events.extend(PathEvent(t, lane, kind) for _ in range(n))

    # -- after the drive ------------------------------------------------------------
    def collect(self, samples: list[Sample], verdict: Verdict) -> InterruptPath:
        t = time.monotonic()
        self._find_line()
        state = self._info_pic()
        if self._l0_on:
            self._l0_switch(False)
        l0 = self._l0_path()
        l1 = self._causal(l0, self._l1_path())
        events = sorted(self.rig_events + self._l2_counts(samples) + l0 + l1, key=lambda e: e.t)
        pending = self._pending_from() if verdict.outcome == Outcome.STALL else None
        stopped = stopped_layer(events, pending)
        self.seconds["collect"] = round(time.monotonic() - t, 3)
        self._collected = True
        lanes = lane_summary(events)
        count, per_serviced = deliveries(lanes)
        return InterruptPath(
            ic=self.ic.name, source=self.source, l1_irq=self.l1_irq, l0_trace_events=list(self.l0_events),
            clock=TraceClock(self.marker_t, self.marker_rtt, self.l1_shift),
            stopped_layer=stopped, pending_from=pending,
            explanation=explain(events, stopped, pending, state),
            deliveries=count, deliveries_per_serviced=per_serviced,
            l0_ic_state_at_end=state, l0_ic_state_at_start=self.start_state, lanes=lanes, notes=self.notes,
            seconds=self.seconds,   # what tracing cost this run: arming, collecting
            events=trimmed(events))

    def _pending_from(self) -> float | None:
        """When the push that was never serviced went in."""
        pushes = [e.t for e in self.rig_events if e.kind == "push"]
        served = sum(1 for e in self.rig_events if e.kind == "serviced")
        return pushes[served] if served < len(pushes) else None

    def _info_pic(self) -> str:
        if self.source is None:
            return ""
        try:
            text = self.l1.machine.hmp("info pic")
        except InfraError as e:
            self.notes.append(f"info pic: {e}")
            return ""
        self.ic.locate(text, self.source)
        return self.ic.state(text, self.source)

    def _l0_path(self) -> list[PathEvent]:
        if self.source is None:
            return []
        try:
            text = self.l1.machine.qemu_log.read_text(errors="replace")
        except OSError as e:
            self.notes.append(f"L0 QEMU log unreadable: {e}")
            return []
        lines = parse_log(text, self.armed_wall)
        start = StartState(self.start_state, self.start_wall - self.t0_wall) if self.start_state else None
        return self.ic.path_events(lines, self.source, self.t0_wall, start) + device_path_events(lines, self.t0_wall)

    def _l1_path(self) -> list[PathEvent]:
        if self.marker_t is None or self.l1_irq is None:
            return []
        try:
            r = self.l1.ssh.run(l1_trace.READ_COMMAND, timeout=timeouts.SSH_TRACE_READ_S)
        except InfraError as e:
            self.notes.append(f"L1 ftrace not read: {e}")
            return []
        (self.out / "l1-ftrace.txt").write_text(r.stdout)
        return l1_trace.parse(r.stdout, self.marker_t, self.l1_irq)

    def _causal(self, l0: list[PathEvent], l1: list[PathEvent]) -> list[PathEvent]:
        """L1's handler cannot run before L0's controller passed the interrupt on. The
        marker places L1's clock to within the SSH round trip; where L1's first handler
        lands before L0's first delivery, shift L1 by the difference if that is within the
        round trip. Only the first pair: later deliveries are not one per handler (XICS and
        the IO-APIC deliver a still-high line again while L1 has it disabled). Measured on
        a 350-interrupt XIVE run, the delivery-to-handler offsets of all pairs spread over 0.7 ms.
        result.json says which shift was applied."""
        fwd = [e.t for e in l0 if e.lane == Lane.L0_IC and e.kind in ("notify", "deliver")]
        handlers = [e.t for e in l1 if e.kind == "handler"]
        if not fwd or not handlers:
            return l1
        shift = fwd[0] - handlers[0]
        if shift <= 0:
            return l1
        if shift > (self.marker_rtt or 0.0):
            self.notes.append(f"L1's first handler is {shift:.3f} s before L0's first delivery, more "
                              "than the marker's round trip: L1's clock left as the marker placed it")
            return l1
        self.l1_shift = round(shift, 6)
        return [PathEvent(e.t + shift, e.lane, e.kind, e.detail) for e in l1]

    @staticmethod
    def _l2_counts(samples: list[Sample]) -> list[PathEvent]:
        """L2's count for the device, where it moved (at the sample's time)."""
        out, prev = [], None
        for s in samples:
            if s.l2 is not None and prev is not None and s.l2 > prev:
                out.append(PathEvent(s.t, Lane.CONSUMER, "l2-count", f"L2 IRQ count {prev} -> {s.l2}"))
            prev = s.l2 if s.l2 is not None else prev
        return out

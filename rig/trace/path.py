"""The interrupt path of one run, layer by layer: what each layer did with the device's
interrupt and when, and where the flow stopped.

Events come from four places, all on one clock (seconds since the drive started, L0's
clock): the rig itself (bytes pushed into the device, bytes the consumer read), L0 QEMU's
trace events for the INTx line and the interrupt controller (rig.ic_trace), L1's ftrace
(rig.l1_trace). This module only holds them and reads them: pure functions, replayable in
unit tests from a result.json.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from rig.core.json_object import JsonObject


class Lane(StrEnum):
    """A layer the interrupt passes, as result.json and the timeline name it."""
    DEVICE = "device"
    L0_LINE = "l0_line"
    L0_IC = "l0_ic"
    L1_HOST = "l1_host"
    CONSUMER = "consumer"


# The lanes, in the order an interrupt flows through them.
LANES = tuple(Lane)
LANE_LABELS = {
    Lane.DEVICE: "device (rig pushes a byte)",
    Lane.L0_LINE: "L0 QEMU: INTx line",
    Lane.L0_IC: "L0 QEMU: interrupt controller",
    Lane.L1_HOST: "L1 kernel: host IRQ / vfio",
    Lane.CONSUMER: "consumer (L2 or L1 userspace)",
}
# Event kinds that carry an interrupt one lane further; the rest (masks, EOIs, ...) are
# the bookkeeping that decides whether the next one gets through.
FORWARD = {"push", "assert", "line", "signal", "notify", "deliver", "handler", "serviced"}
MAX_EVENTS = 6000   # result.json stays readable; the first and last ones are what explain


# A push reaches the device's assertion within this much (QEMU's trace: well under 1 ms).
PUSH_TO_ASSERT_S = 0.05


@dataclass(frozen=True)
class PathEvent:
    t: float          # seconds since the drive started (L0's clock)
    lane: str         # a Lane
    kind: str         # "push", "assert", "notify", "eoi", "mask", "handler", ...
    detail: str = ""

    def to_json(self) -> list[Any]:
        return [round(self.t, 6), self.lane, self.kind, self.detail]

    @classmethod
    def from_json(cls, row: list[Any]) -> PathEvent:
        return cls(row[0], row[1], row[2], row[3] if len(row) > 3 else "")


@dataclass
class TraceClock:
    """How L1's ftrace clock was placed on L0's (rig.chain.tracer)."""
    l1_marker_t: float | None = None      # L0 drive time of L1's sync marker
    l1_marker_rtt_s: float | None = None  # the SSH round trip it was written in
    l1_shift_s: float = 0.0               # the causal correction applied


# What counts as L0's controller handing the interrupt on: a delivery (IO-APIC: remote IRR
# set; XICS: to an ICP), or on XIVE the source forwarding it (P set).
DELIVERY_KINDS = ("deliver", "notify")


@dataclass
class LaneSummary:
    """What one lane did over the run (result.json interrupt_path.lanes)."""
    label: str
    kinds: dict[str, int]                # how many events of each kind
    last_forward_t: float | None         # when it last carried an interrupt on


def deliveries(lanes: dict[str, LaneSummary]) -> tuple[int | None, float | None]:
    """(L0's deliveries of the source, per interrupt the consumer serviced) in the traced
    run; None where nothing was traced or serviced. 1.0: one delivery each; 2.0: the
    lazily disabled line delivered once more per interrupt (on x86, the patch's "spewing")."""
    kinds = lanes[Lane.L0_IC].kinds if Lane.L0_IC in lanes else {}
    served = lanes[Lane.CONSUMER].kinds.get("serviced", 0) if Lane.CONSUMER in lanes else 0
    if not kinds:
        return None, None
    count = sum(kinds.get(k, 0) for k in DELIVERY_KINDS)
    return count, round(count / served, 2) if served else None


@dataclass
class InterruptPath:
    """A run's interrupt path, as result.json keeps it (`interrupt_path`)."""

    ic: str
    source: int | None = None             # L0's number for the line (LISN, IO-APIC pin)
    l1_irq: int | None = None
    l0_trace_events: list[str] = field(default_factory=list)
    clock: TraceClock = field(default_factory=TraceClock)
    stopped_layer: str | None = None
    pending_from: float | None = None
    explanation: str = ""
    deliveries: int | None = None                  # L0's controller handing the source on
    deliveries_per_serviced: float | None = None   # ... per interrupt the consumer serviced
    l0_ic_state_at_end: str = ""
    # The same lines when the trace began, where the line existed then (a restored chain).
    l0_ic_state_at_start: str = ""
    lanes: dict[str, LaneSummary] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)   # what tracing cost: arm, collect
    events: list[PathEvent] = field(default_factory=list)

    def to_json(self) -> JsonObject:
        d = asdict(self)
        d["events"] = [e.to_json() for e in self.events]
        return d

    @classmethod
    def from_json(cls, d: JsonObject) -> InterruptPath:
        return cls(**{**d, "clock": TraceClock(**d.get("clock", {})),
                      "lanes": {k: LaneSummary(**v) for k, v in d.get("lanes", {}).items()},
                      "events": [PathEvent.from_json(r) for r in d.get("events", [])]})


def trimmed(events: list[PathEvent], limit: int = MAX_EVENTS) -> list[PathEvent]:
    """The first and the last events if there are too many: how it started, how it ended."""
    if len(events) <= limit:
        return events
    return events[:limit // 2] + events[-limit // 2:]


def stopped_layer(events: list[PathEvent], pending_from: float | None) -> str | None:
    """The first lane (in flow order) that never carried the pending interrupt on: the lane
    after the last one with a forward event at or after `pending_from` (the push nobody
    serviced). None when nothing is pending or the trace cannot tell."""
    if pending_from is None:
        return None
    reached = None
    for lane in LANES:
        if any(e.lane == lane and e.kind in FORWARD and e.t >= pending_from - 1e-3 for e in events):
            reached = lane
        else:
            return lane if reached else None
    return None   # it went all the way: the consumer just had not read it yet


def lane_summary(events: list[PathEvent]) -> dict[str, LaneSummary]:
    """Per lane: how many of each kind, and when the last forward event was."""
    out = {}
    for lane in LANES:
        mine = [e for e in events if e.lane == lane]
        kinds: dict[str, int] = {}
        for e in mine:
            kinds[e.kind] = kinds.get(e.kind, 0) + 1
        fwd = [e.t for e in mine if e.kind in FORWARD]
        out[lane.value] = LaneSummary(LANE_LABELS[lane], kinds, round(max(fwd), 3) if fwd else None)
    return out


def explain(events: list[PathEvent], stopped: str | None, pending_from: float | None,
            ic_state: str) -> str:
    """One paragraph a kernel developer reads first: where it stopped and what the
    controller's bookkeeping did around it."""
    if stopped is None or pending_from is None:
        return "every layer kept passing interrupts on"
    label = LANE_LABELS[Lane(stopped)]
    parts = [f"the interrupt pushed at t={pending_from:.2f} s stopped at {label}"]
    held = [e for e in events if e.lane == Lane.L0_IC and e.kind == "held" and e.t >= pending_from - 1e-3]
    if held:
        parts.append(f"L0's controller held {len(held)} assertion(s) back: {held[0].detail}")
    handlers = [e.t for e in events if e.lane == Lane.L1_HOST and e.kind == "handler"]
    if handlers:
        parts.append(f"L1's handler ran {len(handlers)} time(s), last at t={handlers[-1]:.2f} s")
    resets = [e for e in events if e.lane == Lane.L0_IC and e.kind in ("eoi", "unmask")]
    if handlers:
        after = [e for e in resets if e.t > handlers[-1]]
        if not after:
            parts.append("after it nothing EOIed or unmasked the source at L0's controller")
    if ic_state:
        parts.append(f"L0's controller at the end: {ic_state.strip()}")
    return "; ".join(parts)


def pushed_while_masked(path: InterruptPath) -> str | None:
    """Why a STALL is the rig's push landing in QEMU's XIVE model gap, not the kernel's
    doing: the unserviced push's assertion was held back because L1 had the source masked
    (PQ=01, the fix's mask while the previous interrupt is serviced), L1 unmasked it after,
    and nothing was forwarded since. QEMU's XIVE re-sends an asserted LSI on EOI but not on
    unmask (docs/mechanism.md), so that assertion is lost whatever the kernel does: the push
    came too early. A source left masked (no unmask after) is a real stall. None otherwise."""
    if path.pending_from is None:
        return None
    after = [e for e in path.events if e.lane == Lane.L0_IC and e.t >= path.pending_from - PUSH_TO_ASSERT_S]
    held = next((e for e in after if e.kind == "held" and "PQ=01" in e.detail), None)
    if held is None:
        return None
    unmask = next((e for e in after if e.kind == "unmask" and e.t >= held.t), None)
    if unmask is None or any(e.kind == "notify" and e.t >= held.t for e in after):
        return None
    return (f"the push at t={path.pending_from:.3f} s asserted the line while L1 had the source masked "
            f"(PQ=01) and L1 unmasked it {1000 * (unmask.t - held.t):.0f} ms later; QEMU's XIVE does not "
            "re-send an LSI asserted while masked at unmask: the rig pushed too early, this says "
            "nothing of the kernel")

"""The verdict: PASS, STALL or ERROR, from what each layer counted over time.

Pure functions over recorded samples, so recorded series can be replayed in unit tests.
STALL needs pending work: the device was given an interrupt to raise (a byte pushed) that
nobody serviced for the stall window, and no layer's count moved in that window. A failure
of the machinery is ERROR, never STALL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import TypedDict

from rig.core.json_object import JsonObject
from rig.core.kinds import Outcome
from rig.trace.path import InterruptPath, pushed_while_masked

# git bisect run: 1 = bad, 125 = skip
EXIT_STATUS = {Outcome.PASS: 0, Outcome.STALL: 1, Outcome.FAIL: 1, Outcome.ERROR: 125}


class DeviceCounters(TypedDict, total=False):
    """The legacy device model's counters worth a timeline, per sample, cumulative (its
    control socket's snapshot, compacted: rig.chain.drive.compact_counters)."""

    raised: int | None
    signalled: int | None
    resignalled: int | None
    unmasks: int | None
    serviced: int | None
    asserted_s: float | None
    intx_disable_writes: int | None
    level: int


class StoppedAt(TypedDict, total=False):
    """Where the counts were at the verdict (empty for an ERROR before any sample)."""

    device_sent: int
    serviced: int
    l1_vfio_intx: int | None
    l2_irq: int | None


@dataclass
class Sample:
    t: float                 # seconds since the drive started
    sent: int                # interrupts asked of the device (bytes pushed)
    serviced: int            # serviced by L2's driver (bytes read by the L2 program)
    l1: int | None = None    # L1 host IRQ count (vfio-intx line)
    l2: int | None = None    # L2 count for the device's IRQ
    device: DeviceCounters | None = None   # the device model's own counters (legacy device only)


@dataclass(frozen=True)
class ScenarioCheck:
    """One step of a scenario other than the flow, as the consumer saw it (rig.chain.scenario)."""

    step: str            # e.g. "delivered-on-unmask", "flow-after-2"
    result: str          # "ok", "lost" (an interrupt that had to come did not) or "spurious"
    what: str = ""       # what was seen, when not ok
    t: float = 0.0       # seconds since the drive started


@dataclass
class Verdict:
    outcome: Outcome
    reason: str
    stopped_at: StoppedAt = field(default_factory=lambda: StoppedAt())
    scenario: str = "flow"                 # the INTx path driven (rig.core.kinds.Scenario)
    checks: list[ScenarioCheck] = field(default_factory=list)   # a scenario's steps (none in the flow)
    notes: list[str] = field(default_factory=list)               # what a scenario's consumer noted

    @property
    def verdict(self) -> Outcome:
        """The outcome, by the name result.json gives it (and pytest plugin users read)."""
        return self.outcome

    @property
    def exit_status(self) -> int:
        return EXIT_STATUS[self.outcome]

    def to_json(self) -> JsonObject:
        """The flow's verdict as it always was; a scenario's with its name and checks."""
        d: JsonObject = {"verdict": self.outcome, "reason": self.reason, "stopped_at": self.stopped_at}
        if self.scenario != "flow":
            d |= {"scenario": self.scenario, "checks": [asdict(c) for c in self.checks], "notes": self.notes}
        return d

    @classmethod
    def from_json(cls, d: JsonObject) -> Verdict:
        return cls(Outcome(d["verdict"]), d["reason"], d.get("stopped_at", {}), d.get("scenario", "flow"),
                   [ScenarioCheck(**c) for c in d.get("checks", [])], list(d.get("notes", [])))


def confirmed(outcomes: list[Outcome]) -> tuple[int, str]:
    """The exit status of runs that must agree (`rig run --confirm N`) and why: the verdict
    when all were the same, else 125, which `git bisect run` takes as "skip": a flaky run
    never marks a commit good or bad. An ERROR in any is an ERROR (125 as well)."""
    if not outcomes:
        return EXIT_STATUS[Outcome.ERROR], "no run finished"
    if Outcome.ERROR in outcomes:
        return EXIT_STATUS[Outcome.ERROR], f"run {outcomes.index(Outcome.ERROR) + 1} ended in ERROR"
    if len(set(outcomes)) > 1:
        return 125, f"the runs disagree ({', '.join(outcomes)}): no verdict (git bisect run skips it)"
    return EXIT_STATUS[outcomes[0]], f"{len(outcomes)} of {len(outcomes)} runs {outcomes[0]}"


def last_change(samples: list[Sample], attr: str) -> float | None:
    """Time of the last sample where attr changed (None if it never did)."""
    prev, when = None, None
    for s in samples:
        v = getattr(s, attr)
        if v is None:
            continue
        if prev is not None and v != prev:
            when = s.t
        prev = v
    return when


def pending_since(samples: list[Sample]) -> float | None:
    """Since when the device has had unserviced work (None if it has none now)."""
    if not samples or samples[-1].sent <= samples[-1].serviced:
        return None
    since = samples[-1].t
    for s in reversed(samples):
        if s.sent > s.serviced and s.serviced == samples[-1].serviced:
            since = s.t
        else:
            break
    return since


def judge(samples: list[Sample], stall_window: float) -> Verdict | None:
    """STALL as soon as it is certain; PASS only at the end (see final()); None: go on."""
    if not samples:
        return None
    now = samples[-1].t
    since = pending_since(samples)
    if since is None or now - since < stall_window:
        return None
    quiet_from = now - stall_window
    moved = [a for a in ("l1", "l2") if (last_change(samples, a) or -1) > quiet_from]
    if moved:
        return None  # something still moves: interrupts flow, the reader is just slow
    if not any(x.l1 for x in samples) and not any(x.serviced for x in samples):
        # The INTx stall lets exactly one interrupt through; none at all is a device or
        # routing problem (e.g. INTx left disabled in the command register): machinery.
        return Verdict(Outcome.ERROR, "no interrupt ever reached L1's vfio-intx handler: the device or "
                              "its interrupt routing is broken, not the INTx stall", stopped_at(samples[-1]))
    return Verdict(Outcome.STALL, f"a pushed interrupt was not serviced for {now - since:.1f} s and no "
                          f"layer's count moved", stopped_at(samples[-1]))


def final(samples: list[Sample], stall_window: float, min_serviced: int) -> Verdict:
    """The verdict at the end of the duration."""
    early = judge(samples, stall_window)
    if early:
        return early
    last = samples[-1] if samples else Sample(0, 0, 0)
    if last.serviced < min_serviced:
        return Verdict(Outcome.ERROR, f"only {last.serviced} interrupts serviced in {last.t:.0f} s, fewer "
                              f"than {min_serviced}, but no stall either: too slow to judge",
                       stopped_at(last))
    return Verdict(Outcome.PASS, f"{last.serviced} interrupts serviced in {last.t:.0f} s, counts grew "
                         "at every layer", stopped_at(last))


def unless_paused(verdict: Verdict, run_states: dict[str, str]) -> Verdict:
    """A STALL only while every QEMU of the chain runs its guest: a guest that is paused,
    migrating or left stopped after a migration (postmigrate) stops its device's interrupts
    exactly as a stall does. run_states: QEMU's QMP run state per layer ("L0's QEMU": L1)."""
    if verdict.outcome != Outcome.STALL:
        return verdict
    stopped = {who: state for who, state in run_states.items() if state != "running"}
    if not stopped:
        return verdict
    states = ", ".join(f"{who} is {state!r}" for who, state in stopped.items())
    return replace(verdict, outcome=Outcome.ERROR, reason=f"the counts stopped, but {states}, not running: a guest "
                   "that does not run is not a STALL")


def unless_pushed_while_masked(verdict: Verdict, path: InterruptPath | None) -> Verdict:
    """A STALL only if the interrupt was lost by the kernel's doing: one whose push landed in
    QEMU's XIVE model gap (asserted while L1 had the source masked, not re-sent at unmask:
    rig.trace.path.pushed_while_masked) is an ERROR, the rig's, never a verdict."""
    if verdict.outcome != Outcome.STALL or path is None or not (why := pushed_while_masked(path)):
        return verdict
    return Verdict(Outcome.ERROR, f"the counts stopped, but {why}", verdict.stopped_at)


def stall_stands(verdict: Verdict, run_states: Callable[[], dict[str, str]],
                 path: InterruptPath | None) -> Verdict:
    """A STALL checked against what would make it the machinery's: a guest not running, a
    push into the model gap. Anything else is returned as it is."""
    if verdict.outcome != Outcome.STALL:
        return verdict
    return unless_pushed_while_masked(unless_paused(verdict, run_states()), path)


def stopped_at(s: Sample) -> StoppedAt:
    return {"device_sent": s.sent, "serviced": s.serviced, "l1_vfio_intx": s.l1, "l2_irq": s.l2}


def describe_stop(v: Verdict) -> str:
    s = v.stopped_at
    verb = "stopped at" if v.outcome == Outcome.STALL else "at"
    parts = [f"L1 vfio-intx {verb} {s.get('l1_vfio_intx')}"]
    if s.get("l2_irq") is not None:
        parts.append(f"L2 IRQ count {verb} {s.get('l2_irq')}")
    parts.append(f"{s.get('serviced')} of {s.get('device_sent')} pushed bytes serviced")
    return ", ".join(parts)

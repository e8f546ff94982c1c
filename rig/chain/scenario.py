"""A scenario's drive (docs/scenarios.md): the userspace consumer in L1 takes the steps of one
of vfio-pci's INTx paths, asks the rig for each byte ("PUSH") and says what each step saw
("CHECK <step> ok|lost|spurious <what>", "SERVICED"); the rig pushes, samples every layer's count at
each step, and judges from the checks.

The verdict: FAIL if an event came that must not have (the mask did not hold, a double) or
vfio answered a call otherwise than it must (a line shared that must not be),
else STALL if an interrupt that had to come did not (the device waits on its line), else
PASS. A consumer that ends, or says nothing for SCENARIO_LINE_S, is the machinery's: ERROR.
Unlike the flow's STALL, a scenario's is not excused when the push landed while the source
was masked at the controller: that is what masked-pending is for.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Protocol

from rig.chain.drive import Counters, Device, Marks, compact_counters
from rig.chain.verdict import Sample, ScenarioCheck, StoppedAt, Verdict, stopped_at
from rig.core import timeouts
from rig.core.errors import InfraError
from rig.core.kinds import Outcome, Scenario
from rig.core.progress import Progress
from rig.trace.path import InterruptPath

log = logging.getLogger(__name__)

RESULTS = ("ok", "lost", "spurious", "wrong")     # wrong: vfio answered a call otherwise than it must
MAX_PUSH = 64          # bytes at once: more than any scenario asks (storm: 16)


class Lines(Protocol):
    def next_line(self, timeout: float) -> str | None: ...


def parse_check(line: str, t: float) -> ScenarioCheck:
    """`CHECK <step> <result> [what]` as the consumer prints it."""
    parts = line.split(" ", 3)
    if len(parts) < 3 or parts[2] not in RESULTS:
        raise InfraError(f"the consumer said a CHECK the rig cannot read: {line[:200]!r}")
    return ScenarioCheck(parts[1], parts[2], parts[3] if len(parts) > 3 else "", round(t, 3))


def push_count(arg: str) -> int:
    """`PUSH [n]`: how many bytes at once (storm pushes several)."""
    if not arg:
        return 1
    if not arg.isdigit() or not 1 <= int(arg) <= MAX_PUSH:
        raise InfraError(f"the consumer asked for a push the rig does not make: PUSH {arg[:40]!r}")
    return int(arg)


def judged(scenario: Scenario, checks: list[ScenarioCheck], at: StoppedAt) -> Verdict:
    """The verdict of a finished scenario from its checks."""
    failed = [c for c in checks if c.result != "ok"]
    spurious = [c for c in failed if c.result in ("spurious", "wrong")]
    if spurious:
        c = spurious[0]
        return Verdict(Outcome.FAIL, f"{scenario}: {c.step}: {c.what}", at, scenario, checks)
    if failed:
        c = failed[0]
        return Verdict(Outcome.STALL, f"{scenario}: {c.step}: {c.what}", at, scenario, checks)
    if not checks:
        return Verdict(Outcome.ERROR, f"{scenario}: the consumer ended the scenario without a check", at,
                       scenario, checks)
    return Verdict(Outcome.PASS, f"{scenario}: all {len(checks)} steps held", at, scenario, checks)


# storm: at most one delivery more per interrupt than a masked line gets. A lazily disabled
# line is delivered once more and masked then (handle_fasteoi_irq() finds it disabled); one
# the controller kept delivering while vfio had it disabled (the patch's "spewing") shows more.
STORM_DELIVERIES_BOUND = 2.5


def scenario_final(verdict: Verdict, path: InterruptPath) -> Verdict:
    """The verdict once the interrupt path is collected: a storm is bounded by it."""
    if verdict.scenario != Scenario.STORM:
        return verdict
    return storm_bounded(verdict, path.deliveries_per_serviced, path.deliveries)


def storm_bounded(verdict: Verdict, per_serviced: float | None, deliveries: int | None) -> Verdict:
    """A storm that read every byte, judged on L0's deliveries per serviced interrupt."""
    if verdict.outcome != Outcome.PASS:
        return verdict
    if per_serviced is None:
        return replace(verdict, notes=[*verdict.notes, "L0's deliveries were not traced: the storm's bound "
                                                        "was not checked"])
    figure = f"L0 delivered the line {deliveries} times, {per_serviced} per serviced interrupt"
    if per_serviced > STORM_DELIVERIES_BOUND:
        return replace(verdict, outcome=Outcome.FAIL,
                       reason=f"{verdict.scenario}: {figure}, more than {STORM_DELIVERIES_BOUND} (the line was "
                              f"delivered again and again while vfio had it disabled)")
    return replace(verdict, reason=f"{verdict.reason}; {figure}")


class ScenarioDrive:
    """One scenario on a started chain: its samples, checks and notes, then its verdict."""

    def __init__(self, scenario: Scenario, lines: Lines, device: Device, counts: Counters, marks: Marks,
                 progress: Progress):
        self.scenario, self.lines, self.device, self.counts = scenario, lines, device, counts
        self.marks, self.progress = marks, progress
        self.samples: list[Sample] = []
        self.checks: list[ScenarioCheck] = []
        self.notes: list[str] = []
        self.pushed = self.serviced = 0

    def run(self) -> Verdict:
        self.progress.step(f"driving the {self.scenario} scenario (the consumer takes the steps)")
        t0 = self.marks.begin()
        deadline = t0 + timeouts.SCENARIO_S
        while (left := deadline - time.monotonic()) > 0:
            line = self.lines.next_line(min(left, timeouts.SCENARIO_LINE_S))
            if line is None:
                return self._error(f"the consumer said nothing for {timeouts.SCENARIO_LINE_S:.0f} s "
                                   f"after {self._last()}")
            if self._take(line, time.monotonic() - t0):
                return replace(judged(self.scenario, self.checks, self._at()), notes=self.notes)
        return self._error(f"the scenario did not end within {timeouts.SCENARIO_S:.0f} s")

    def _take(self, line: str, t: float) -> bool:
        """Acts on one line; True at END."""
        word, _, rest = line.partition(" ")
        if word == "PUSH":
            n = push_count(rest)
            self.marks.mark("push", n)
            self.device.push(n)
            self.pushed += n
        elif word == "SERVICED":
            self.marks.mark("serviced")
            self.serviced += 1
        elif word == "CHECK":
            check = parse_check(line, t)
            self.checks.append(check)
            self._sample(t)
            self.progress.note(f"{check.step}: {check.result}" + (f" ({check.what})" if check.what else ""))
        elif word == "NOTE":
            self.notes.append(line[5:])
            self.progress.note(line[5:])
        elif word == "END":
            self._sample(t)      # the consumer keeps INTx set up until the rig hangs up
            return True
        else:
            log.warning("the consumer said %r (not part of the scenario protocol)", line[:200])
        return False

    def _sample(self, t: float) -> None:
        l1, _ = self.counts()
        dev = self.device.counters()
        self.samples.append(Sample(round(t, 3), self.pushed, self.serviced, l1, None,
                                   device=compact_counters(dev) if dev else None))

    def _at(self) -> StoppedAt:
        return stopped_at(self.samples[-1]) if self.samples else StoppedAt()

    def _last(self) -> str:
        return f"step {self.checks[-1].step}" if self.checks else "its start"

    def _error(self, why: str) -> Verdict:
        return Verdict(Outcome.ERROR, f"{self.scenario}: {why}", self._at(), self.scenario, self.checks, self.notes)

"""The l2-reboot scenario (docs/scenarios.md): interrupts flow to L2, L2 is reset by its QEMU
in L1 (which resets the device it passes through and sets INTx up again through vfio), and
the flow must resume once L2 is back. Two flow drives around the reboot, one verdict.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

from rig.chain.verdict import Sample, ScenarioCheck, Verdict
from rig.core.errors import InfraError
from rig.core.kinds import Outcome, Scenario
from rig.core.progress import Progress
from rig.core.spec import MIN_SERVICED, DriveSpec

# Serviced before the reboot: enough for the flow's own verdict (its stall shows by then).
BEFORE_REBOOT = MIN_SERVICED


class FlowDrive(Protocol):
    samples: list[Sample]
    def run(self) -> Verdict: ...


class Tracer(Protocol):
    def mark(self, kind: str, n: int = 1) -> None: ...


class ContinuedMarks:
    """The drive after the reboot marks its events on the first drive's clock: the timeline
    and L0's trace run on through the reboot."""

    def __init__(self, tracer: Tracer):
        self.tracer = tracer

    def begin(self) -> float:
        return time.monotonic()

    def mark(self, kind: str, n: int = 1) -> None:
        self.tracer.mark(kind, n)


def drive_check(step: str, verdict: Verdict, t0: float) -> ScenarioCheck:
    """A flow drive of the scenario as one of its steps: ok if it PASSed."""
    ok = verdict.outcome == Outcome.PASS
    return ScenarioCheck(step, "ok" if ok else "lost", "" if ok else verdict.reason, round(time.monotonic() - t0, 3))


class RebootDrive:
    """The flow, L2's reboot, the flow again. `drive(cfg, continued)` makes a flow drive on
    the chain as it is when called (its reader restarted after the reboot; continued: marked
    on the first drive's clock, ContinuedMarks); `reboot()` resets L2 and starts its reader
    again, returning the seconds it took."""

    def __init__(self, cfg: DriveSpec, drive: Callable[[DriveSpec, bool], FlowDrive], reboot: Callable[[], float],
                 progress: Progress):
        self.cfg, self.drive, self.reboot, self.progress = cfg, drive, reboot, progress
        self.samples: list[Sample] = []

    def run(self) -> Verdict:
        t0 = time.monotonic()
        first = self.drive(replace(self.cfg, pass_after=max(self.cfg.pass_after, BEFORE_REBOOT)), False)
        before = first.run()
        self.samples = list(first.samples)
        # The first drive's clock: its last sample was taken as it ended.
        first_t0 = time.monotonic() - (self.samples[-1].t if self.samples else 0.0)
        checks = [drive_check("before-reboot", before, t0)]
        if before.outcome != Outcome.PASS:
            return replace(before, reason=f"{Scenario.L2_REBOOT}: before L2's reboot: {before.reason}",
                           scenario=Scenario.L2_REBOOT, checks=checks)
        self.progress.step("L2: reset by its QEMU (system_reset), the flow to resume once it is back")
        try:
            took = self.reboot()
        except InfraError as e:
            raise InfraError(f"L2's reboot: {e}") from e
        checks.append(ScenarioCheck("reboot", "ok", f"L2 back, its reader started again, in {took:.1f} s",
                                    round(time.monotonic() - t0, 3)))
        offset = time.monotonic() - first_t0
        second = self.drive(self.cfg, True)
        after = second.run()
        last = self.samples[-1] if self.samples else Sample(0.0, 0, 0)
        self.samples += [replace(s, t=round(s.t + offset, 3), sent=s.sent + last.sent,
                                 serviced=s.serviced + last.serviced) for s in second.samples]
        checks.append(drive_check("flow-after-reboot", after, t0))
        return replace(after, reason=f"{Scenario.L2_REBOOT}: after L2's reboot ({took:.0f} s): {after.reason}",
                       scenario=Scenario.L2_REBOOT, checks=checks)

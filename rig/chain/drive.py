"""The drive: push a byte into the device (an RX interrupt), count what each layer did,
judge. It stands alone: the device, the consumer's reader, the counters and the tracer
come in as small interfaces, so the loop is tested with fakes (tests/test_drive.py) and
the chain plugs in the real ones.

Pacing: a new byte only after the consumer read the previous one (plus a gap), so the
device never asserts while the previous interrupt is still in flight (the userspace
consumer says it read a byte only once it has unmasked the line again). QEMU's XIVE model
loses an assertion that arrives while masked and is still asserted at unmask even with
the fix (docs/mechanism.md); a paced device keeps a fixed kernel from ever looking stalled.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Protocol

from rig.chain.verdict import DeviceCounters, Sample, Verdict, final, judge, pending_since
from rig.core import timeouts
from rig.core.json_object import JsonObject
from rig.core.progress import Progress
from rig.core.spec import DriveSpec

log = logging.getLogger(__name__)

# A sample's time is rounded to the ms: a decision sample this much after the window's end
# is never judged a hair short of it.
DECIDE_LATE_S = 0.01


class Device(Protocol):
    def push(self, n: int = 1) -> None: ...
    def counters(self) -> JsonObject | None: ...


class Reader(Protocol):
    unserviced: int
    def read_serviced(self, wait: float) -> int: ...
    def settle(self, timeout: float) -> None: ...


class Counters(Protocol):
    def __call__(self) -> tuple[int | None, int | None]:
        """(L1's vfio-intx count, L2's count for the device or None); raises InfraError
        when a layer is gone."""
        ...


class Marks(Protocol):
    def begin(self) -> float: ...
    def mark(self, kind: str, n: int = 1) -> None: ...


def compact_counters(snapshot: JsonObject) -> DeviceCounters:
    """The device model's counters worth a timeline: per sample, cumulative."""
    c = snapshot["counters"]
    return DeviceCounters(raised=c.get("raised"), signalled=c.get("signalled"), resignalled=c.get("resignalled"),
                          unmasks=c.get("unmasks"), serviced=c.get("serviced"), asserted_s=c.get("asserted_s"),
                          intx_disable_writes=c.get("intx_disable_writes"), level=snapshot["level"])


class Drive:
    """One drive: its samples and, at the end, its verdict."""

    def __init__(self, cfg: DriveSpec, device: Device, reader: Reader, counts: Counters,
                 marks: Marks, progress: Progress):
        self.cfg, self.device, self.reader, self.counts = cfg, device, reader, counts
        self.marks, self.progress = marks, progress
        self.samples: list[Sample] = []
        self.sent = self.serviced = 0

    def run(self) -> Verdict:
        cfg = self.cfg
        self.progress.step(f"driving interrupts for up to {cfg.duration:.0f} s "
                           f"(STALL after {cfg.window:g} s without progress)")
        self.reader.settle(cfg.window)
        t0 = self.marks.begin()
        next_send = next_sample = t0
        look = math.inf        # a push still unread by then is sampled then, not at the next tick
        decide = math.inf      # a sample when a stall window will have passed, not the tick after
        verdict = None
        while (now := time.monotonic()) - t0 < cfg.duration:
            if self.sent == self.serviced and now >= next_send and not self._enough():
                self.marks.mark("push")
                self.device.push()
                self.sent += 1
                look = now + timeouts.PENDING_LOOK_S
            if now >= min(next_sample, look, decide) or self._enough():   # a PASS at its count
                next_sample = now + cfg.sample_every if now >= next_sample else next_sample
                look = math.inf
                verdict = self._sample(now - t0) or self._passed()
                if verdict:
                    break
                decide = self._decision_due(t0)
            wait = max(0.0, min(next_sample, look, decide, next_send if self.sent == self.serviced else math.inf)
                       - time.monotonic())
            got = self.reader.read_serviced(wait)
            if got:
                self.marks.mark("serviced", got)
                self.serviced += got
                next_send = time.monotonic() + cfg.gap
                look = math.inf
        if verdict is None:
            self._sample(time.monotonic() - t0)
            verdict = final(self.samples, cfg.window, cfg.min_serviced)
        self.reader.unserviced = self.sent - self.serviced
        log.info("drive ended: %s (%s); pushed %d, serviced %d", verdict.outcome, verdict.reason,
                 self.sent, self.serviced)
        return verdict

    def _sample(self, t: float) -> Verdict | None:
        l1, l2 = self.counts()
        dev = self.device.counters()
        self.samples.append(Sample(round(t, 3), self.sent, self.serviced, l1, l2,
                                   device=compact_counters(dev) if dev else None))
        if len(self.samples) % 5 == 1:
            self.progress.note(f"t={t:5.1f}s pushed={self.sent} serviced={self.serviced} "
                               f"L1 vfio-intx={l1} L2 irq={l2}")
        return judge(self.samples, self.cfg.window)

    def _decision_due(self, t0: float) -> float:
        """When the work pending now will have waited a whole stall window (inf if none is)."""
        since = pending_since(self.samples)
        return math.inf if since is None else t0 + since + self.cfg.window + DECIDE_LATE_S

    def _enough(self) -> bool:
        return bool(self.cfg.pass_after) and self.serviced >= self.cfg.pass_after

    def _passed(self) -> Verdict | None:
        """PASS once pass_after interrupts were serviced, however soon: each is a whole
        cycle (pushed, delivered, handled, read, unmasked), and a stall shows in the count
        it stops at (the bug's at 1), not in seconds (docs/usage.md, the verdict)."""
        return final(self.samples, self.cfg.window, self.cfg.min_serviced) if self._enough() else None

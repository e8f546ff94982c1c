"""The drive loop on its own, with a fake device, fake counters and a socketpair for the
consumer's lines: its pacing and when it stops. (The verdict rules themselves are
rig.chain.verdict's, tested in test_verdict.py; here they are reached through the loop.)"""

import socket
import time

import pytest
from test_chain_reader import reader_and_consumer

from rig.chain.drive import Drive
from rig.core.errors import InfraError
from rig.core.progress import Progress
from rig.core.spec import DriveSpec

pytestmark = pytest.mark.unit

FAST = dict(stall_window=0.3, sample_every=0.05, gap=0.001, min_serviced=10)


class FakeDevice:
    """Each push is an interrupt; the first `serves` of them are serviced (the consumer
    prints a line), later ones are lost, as on a stalled XIVE source."""

    def __init__(self, consumer: socket.socket, serves: int = 10**9):
        self.consumer, self.serves, self.pushed, self.in_flight = consumer, serves, 0, 0

    def push(self) -> None:
        assert self.in_flight == 0, "pushed while the previous interrupt was in flight"
        self.pushed += 1
        if self.pushed <= self.serves:
            self.consumer.sendall(b"R\n")
        else:
            self.in_flight = 1

    def counters(self):
        return None

    def delivered(self) -> int:
        return min(self.pushed, self.serves)


class Marks:
    def __init__(self):
        self.kinds: list[str] = []

    def begin(self) -> float:
        return time.monotonic()

    def mark(self, kind: str, n: int = 1) -> None:
        self.kinds += [kind] * n


@pytest.fixture
def wire():
    yield from reader_and_consumer()


def drive(wire, serves, counts=None, **cfg):
    reader, consumer = wire
    device, marks = FakeDevice(consumer, serves), Marks()
    counts = counts or (lambda: (device.delivered(), device.delivered()))
    d = Drive(DriveSpec(**{**FAST, **cfg}), device, reader, counts, marks, Progress(quiet=True))
    return d.run(), d, device, marks, reader


def test_a_flowing_device_passes_once_enough_were_serviced(wire):
    v, d, device, marks, _ = drive(wire, serves=10**9, duration=10, pass_after=30)
    assert v.verdict == "PASS" and d.serviced >= 30 and d.samples[-1].t < 5
    assert marks.kinds.count("push") == device.pushed == d.sent
    assert d.sent - d.serviced <= 1                  # one byte in flight at a time, never more


def test_a_pass_comes_at_its_count_not_after_a_stall_window(wire):
    """Each serviced interrupt is a whole cycle: 30 of them are a PASS however soon they
    came; waiting out a stall window as well only added seconds to every PASS."""
    v, d, _, _, _ = drive(wire, serves=10**9, duration=20, pass_after=30, stall_window=10)
    assert v.verdict == "PASS" and d.serviced >= 30 and d.samples[-1].t < 5


@pytest.mark.parametrize("asked, l2_accel, window", [
    (None, "", 2.0), (None, "kvm", 3.0), (None, "tcg", 5.0), (7.5, "tcg", 7.5), (3.0, "", 3.0),
])
def test_the_stall_window_is_the_one_asked_for_else_the_one_for_how_l2_runs(asked, l2_accel, window):
    """More than twice the longest push to its read (0.83 s in fast mode, 1.29 s with a KVM L2,
    docs/measurements.md); 5 s for L2 under TCG, not measured."""
    settled = DriveSpec(duration=20, stall_window=asked).settled(l2_accel)
    assert settled.window == window and settled.stall_window == window
    with pytest.raises(ValueError):
        _ = DriveSpec(duration=20).window


def test_a_device_that_takes_one_interrupt_then_none_stalls_early(wire):
    v, d, _, _, reader = drive(wire, serves=1, duration=10)
    assert v.verdict == "STALL"
    assert v.stopped_at == {"device_sent": 2, "serviced": 1, "l1_vfio_intx": 1, "l2_irq": 1}
    assert d.samples[-1].t < 3                       # decided a stall window after the stop
    assert reader.unserviced == 1                    # the next drive on this chain waits for it


def test_a_stall_is_decided_a_window_after_the_push_went_unread_not_at_a_later_tick(wire):
    """A push unread after PENDING_LOOK_S is sampled then, and the sample that decides comes
    when the window has passed: with 1 s ticks and a 0.3 s window, well before the second tick."""
    v, d, _, _, _ = drive(wire, serves=1, duration=10, sample_every=1.0)
    assert v.verdict == "STALL"
    assert 0.3 <= d.samples[-1].t < 1.0, [s.t for s in d.samples]


def test_nothing_ever_reaching_l1_is_error_not_stall(wire):
    v, *_ = drive(wire, serves=0, duration=10, counts=lambda: (0, 0))
    assert v.verdict == "ERROR" and "ever reached L1" in v.reason


def test_too_few_interrupts_by_the_end_is_error(wire):
    v, d, *_ = drive(wire, serves=10**9, duration=0.5, min_serviced=10**6)
    assert v.verdict == "ERROR" and "too slow to judge" in v.reason and d.serviced > 0


def test_a_layer_that_dies_is_an_infrastructure_error_not_a_verdict(wire):
    def dead():
        raise InfraError("l1: QEMU exited (status -9)")
    with pytest.raises(InfraError, match="QEMU exited"):
        drive(wire, serves=10**9, duration=5, counts=dead)

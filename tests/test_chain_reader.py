"""The consumer's reader: serviced bytes counted from the consumer's lines (a socketpair
stands in for the SSH channel the lines arrive on)."""

import socket

import pytest

from rig.chain.reader import ConsumerReader
from rig.core.errors import InfraError

pytestmark = pytest.mark.unit


@pytest.fixture
def reading():
    yield from reader_and_consumer()


def reader_and_consumer():
    """A ConsumerReader on one end of a socketpair; the other end is the consumer's output."""
    ours, theirs = socket.socketpair()
    yield ConsumerReader(ours), theirs
    ours.close()
    theirs.close()


def test_the_first_line_is_returned_and_the_rest_kept(reading):
    reader, consumer = reading
    consumer.sendall(b"READER dev=0000:00:03.0 tty=ttyS1 irq=11\nR\n")
    assert reader.first_line(5).startswith("READER dev=0000:00:03.0")
    consumer.sendall(b"R\n")
    assert reader.read_serviced(5) == 2


def test_lines_are_counted_across_reads(reading):
    reader, consumer = reading
    consumer.sendall(b"got 41\ngot 42\ngo")
    assert reader.read_serviced(5) == 2
    consumer.sendall(b"t 43\n")
    assert reader.read_serviced(5) == 1


def test_previous_drives_straggler_is_not_counted_by_the_next(reading):
    """A byte pushed just before a drive ended is read after it: the next drive waits for
    it and does not count it (counting it made serviced overtake pushed and the drive stop
    pushing)."""
    reader, consumer = reading
    reader.unserviced = 1
    consumer.sendall(b"got 41\n")
    reader.settle(5)
    assert reader.unserviced == 0
    consumer.sendall(b"got 42\n")
    assert reader.read_serviced(5) == 1


def test_a_straggler_that_never_came_is_dropped_when_it_does(reading):
    reader, consumer = reading
    reader.unserviced = 1
    reader.settle(0.05)
    consumer.sendall(b"got 41\ngot 42\n")
    assert reader.read_serviced(5) == 1
    assert reader.unserviced == 0


def test_reader_gone_is_an_infrastructure_error(reading):
    reader, consumer = reading
    consumer.close()
    with pytest.raises(InfraError, match="exited"):
        reader.read_serviced(5)

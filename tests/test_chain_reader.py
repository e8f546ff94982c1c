"""The drive loop's count of serviced bytes, from the consumer's lines (a socketpair stands
in for the SSH channel the lines arrive on)."""

import socket

import pytest

from rig.chain import Chain

pytestmark = pytest.mark.unit


@pytest.fixture
def chain_reading():
    ours, theirs = socket.socketpair()
    chain = Chain.__new__(Chain)     # only the reader side: no guests
    chain.reader = ours
    yield chain, theirs
    ours.close()
    theirs.close()


def test_lines_are_counted_across_reads(chain_reading):
    chain, consumer = chain_reading
    consumer.sendall(b"got 41\ngot 42\ngo")
    assert chain._read_serviced(5) == 2
    consumer.sendall(b"t 43\n")
    assert chain._read_serviced(5) == 1


def test_previous_drives_straggler_is_not_counted_by_the_next(chain_reading):
    """A byte pushed just before a drive ended is read after it: the next drive waits for
    it and does not count it (counting it made serviced overtake pushed and the drive stop
    pushing)."""
    chain, consumer = chain_reading
    chain._unserviced = 1
    consumer.sendall(b"got 41\n")
    chain._settle_previous_drive(5)
    assert chain._unserviced == 0
    consumer.sendall(b"got 42\n")
    assert chain._read_serviced(5) == 1


def test_a_straggler_that_never_came_is_dropped_when_it_does(chain_reading):
    chain, consumer = chain_reading
    chain._unserviced = 1
    chain._settle_previous_drive(0.05)
    consumer.sendall(b"got 41\ngot 42\n")
    assert chain._read_serviced(5) == 1
    assert chain._unserviced == 0


def test_reader_gone_is_an_infrastructure_error(chain_reading):
    from rig.errors import InfraError
    chain, consumer = chain_reading
    consumer.close()
    with pytest.raises(InfraError, match="exited"):
        chain._read_serviced(5)

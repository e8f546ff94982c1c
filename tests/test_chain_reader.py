"""The consumer's reader: serviced bytes counted from the consumer's lines (a socketpair
stands in for the SSH channel the lines arrive on)."""

import socket
import threading

import pytest

from rig.chain.reader import ConsumerReader
from rig.core import timeouts
from rig.core.errors import InfraError

pytestmark = pytest.mark.unit


@pytest.fixture
def reading():
    yield from reader_and_consumer()


class SocketChannel:
    """A socket with what a paramiko channel says when its command ends."""

    def __init__(self, sock: socket.socket, status: int | None = None, stderr: bytes = b""):
        self.sock, self.status, self.stderr = sock, status, stderr
        self.status_event = threading.Event()
        if status is not None:
            self.status_event.set()

    def recv(self, n):
        return self.sock.recv(n)

    def fileno(self):
        return self.sock.fileno()

    def close(self):
        self.sock.close()

    def exit_status_ready(self):
        return self.status_event.is_set()

    def recv_exit_status(self):
        return -1 if self.status is None else self.status

    def recv_stderr_ready(self):
        return bool(self.stderr)

    def recv_stderr(self, n):
        return self.stderr[:n]


def reader_and_consumer(**ending):
    """A ConsumerReader on one end of a socketpair; the other end is the consumer's output."""
    ours, theirs = socket.socketpair()
    yield ConsumerReader(SocketChannel(ours, **ending)), theirs
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


def test_a_reader_that_exited_says_its_status_and_stderr():
    for reader, consumer in reader_and_consumer(status=1, stderr=b"sh: read error: I/O error\n"):
        consumer.close()
        with pytest.raises(InfraError, match="reader .* exited with status 1: sh: read error: I/O error$"):
            reader.read_serviced(5)


def test_a_reader_gone_without_a_status_says_so(monkeypatch):
    """No exit status: a signal, or the SSH connection dropped (waited for briefly)."""
    monkeypatch.setattr(timeouts, "READER_STATUS_S", 0.01)
    for reader, consumer in reader_and_consumer():
        consumer.close()
        with pytest.raises(InfraError, match="stopped with no exit status .*connection dropped"):
            reader.read_serviced(5)

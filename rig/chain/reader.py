"""The consumer's side of the drive: a program (L2's reader, or the userspace VFIO
consumer in L1) that prints one line per byte it read from the device, over an SSH
channel. This counts those lines, and keeps one drive's late bytes out of the next."""

from __future__ import annotations

import os
import select
import threading
import time
from dataclasses import dataclass
from typing import Protocol

from rig.core import timeouts
from rig.core.errors import InfraError
from rig.guests.ssh import GuestSSH

CONSUMER = "/usr/bin/rig-vfio-intx-consumer"   # guest_images/consumer, in every L1 image
# A slow VMM on demand: the consumer waits this many microseconds between servicing the
# device and unmasking its INTx (a test makes it slower than the drive's push gap).
SLOW_UNMASK_ENV = "RIG_CONSUMER_UNMASK_DELAY_US"


def consumer_command(device: str, iommu_group: str, scenario: str = "flow", non_2_3: bool = True) -> str:
    """The userspace consumer's command line in L1 (fast mode). The scenario is one of
    rig.core.kinds.Scenario (validated), the device and group what L1's sysfs named;
    non_2_3: vfio takes its non-2.3 INTx path for the device (as the bind found)."""
    delay = os.environ.get(SLOW_UNMASK_ENV, "")
    slow = f"-u {int(delay)} " if delay.isdigit() else ""
    path = "non-2.3" if non_2_3 else "2.3"
    return f"{CONSUMER} {slow}-s {scenario} -p {path} {device} {iommu_group}"


class Channel(Protocol):
    """What the reader needs of a paramiko channel (tests stand a socket in for it)."""

    status_event: threading.Event

    def recv(self, n: int) -> bytes: ...
    def fileno(self) -> int: ...
    def close(self) -> None: ...
    def exit_status_ready(self) -> bool: ...
    def recv_exit_status(self) -> int: ...
    def recv_stderr_ready(self) -> bool: ...
    def recv_stderr(self, n: int) -> bytes: ...


class ConsumerReader:
    def __init__(self, channel: Channel):
        self.channel = channel
        self._buf = b""
        self.unserviced = 0      # bytes the last drive pushed that were not read when it ended

    def first_line(self, timeout: float) -> str:
        """The consumer's first line (READER ...), or what it said before it exited."""
        buf = b""
        deadline = time.monotonic() + timeout
        while b"\n" not in buf and time.monotonic() < deadline:
            ready, _, _ = select.select([self.channel], [], [], deadline - time.monotonic())
            if ready:
                data = self.channel.recv(4096)
                if not data:
                    break
                buf += data
        line, _, rest = buf.partition(b"\n")
        self._buf = rest
        return line.decode(errors="replace").strip()

    def read_serviced(self, wait: float) -> int:
        """Lines the consumer printed (one per byte read) within `wait` seconds, less the
        previous drive's stragglers."""
        ready, _, _ = select.select([self.channel], [], [], wait)
        if not ready:
            return 0
        data = self.channel.recv(65536)
        if not data:
            raise InfraError("the consumer's reader (L2's, or the userspace program in L1) "
                             f"{self.how_it_ended()}")
        self._buf += data
        n = self._buf.count(b"\n")
        self._buf = self._buf.rsplit(b"\n", 1)[-1]
        stale = min(n, self.unserviced)
        self.unserviced -= stale
        return n - stale

    def next_line(self, timeout: float) -> str | None:
        """The consumer's next whole line (a scenario's PUSH, CHECK, NOTE or END), or None
        if none came within `timeout`; InfraError if it ended first."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.channel], [], [], left)[0]:
                return None
            data = self.channel.recv(65536)
            if not data:
                raise InfraError(f"L1's userspace VFIO consumer {self.how_it_ended()}")
            self._buf += data
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode(errors="replace").strip()

    def how_it_ended(self) -> str:
        """What its channel says once it gave no more output: the exit status and what
        it wrote to stderr, or that there is none (killed by a signal, or the SSH
        connection to the guest dropped)."""
        self.channel.status_event.wait(timeouts.READER_STATUS_S)      # the exit-status message may follow the EOF
        status = self.channel.recv_exit_status() if self.channel.exit_status_ready() else -1
        err = self.channel.recv_stderr(4096) if self.channel.recv_stderr_ready() else b""
        said = f": {err.decode(errors='replace').strip()[-300:]}" if err.strip() else ""
        if status == -1:
            return f"stopped with no exit status (killed by a signal, or its SSH connection dropped){said}"
        return f"exited with status {status}{said}"

    def settle(self, timeout: float) -> None:
        """A second drive on the same chain (the rig_chain fixture) must not count the
        previous drive's last byte, read after that drive ended, as its own: wait for it.
        One that never comes (a stalled device) is discarded when it is read."""
        deadline = time.monotonic() + timeout
        while self.unserviced > 0 and (left := deadline - time.monotonic()) > 0:
            self.read_serviced(left)

    def close(self) -> None:
        self.channel.close()


@dataclass(frozen=True)
class ConsumerStarted:
    """The consumer stage's result: the device as the consumer sees it (its READER line)."""

    device: str          # the PCI address (L2's, or L1's in fast mode)
    tty: str             # L2's tty for it, or what stands for it in fast mode
    irq: str             # the IRQ it counts in /proc/interrupts


def open_reader(ssh: GuestSSH, command: str, what: str) -> tuple[ConsumerReader, ConsumerStarted]:
    """Start the consumer over SSH; what its READER line says (dev, tty, irq)."""
    from rig.chain.bind import parse_facts

    chan = ssh.open_session()
    chan.exec_command(command)
    reader = ConsumerReader(chan)
    line = reader.first_line(timeouts.READER_START_S)
    if not line.startswith("READER"):
        chan.recv_exit_status()
        err = chan.recv_stderr(65536).decode(errors="replace") if chan.recv_stderr_ready() else ""
        reader.close()
        raise InfraError(f"{what} did not start: {line or err.strip()}")
    facts = parse_facts(line)
    try:
        return reader, ConsumerStarted(facts["dev"], facts["tty"], facts["irq"])
    except KeyError as e:
        reader.close()
        raise InfraError(f"{what} started without saying its {e.args[0]}: {line}") from e

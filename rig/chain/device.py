"""The device under test as L0 sees it, one class per kind: its QEMU arguments, its PCI
IDs, how the rig feeds it interrupts, and (for the legacy device) its own counters.

pci-serial: QEMU's stock UART (one I/O BAR); "legacy" is faked in L1 with vfio-pci
nointxmask=1. virtio-serial: a modern-only virtio console with MSI-X off (one MMIO BAR,
INTx cleared by reading its ISR), for machines without I/O space; faked the same way.
Both take each byte the rig writes to their socket as one receive interrupt.
legacy: device_models' PCI 2.2 UART served over vfio-user by a process the rig owns;
vfio-pci takes its non-2.3 path by itself. pci-serial-2.3 and virtio-serial-2.3: the stock
devices as they are, PCI 2.3, for vfio's 2.3 path (the scenarios' contrast).
"""

from __future__ import annotations

import json
import select
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Protocol, TextIO

from device_models.control import ControlClient
from rig.core import timeouts
from rig.core.errors import InfraError, UserError
from rig.core.json_object import JsonObject
from rig.core.kinds import DeviceKind
from rig.core.shell import guest_script
from rig.core.targets import MachineProfile
from rig.guests.l1 import L1Guest
from rig.guests.ssh import GuestSSH
from rig.host.children import die_with_parent, wait_or_kill
from rig.host.qemu import QemuBinary, option_value
from rig.host.rundir import RunDir
from rig.trace.l0_ic import VFIO_USER_EVENTS, VIRTIO_CONSOLE_EVENTS

ROOT = Path(__file__).resolve().parents[2]


PCI_SERIAL_ID = ("0x1b36", "0x0002")


class Device(Protocol):
    """What the chain needs of a device under test."""

    name: str
    pci_id: tuple[str, str]                # how L1 and L2 find it in sysfs
    migratable: bool                       # QEMU can save it with L1 (a snapshot: rig.guests.snapshot)
    hotplugged: bool                       # added once L1 runs (so L1 alone can be saved without it)
    needs_nointxmask: bool                 # vfio-pci must be told to take its non-2.3 path
    l0_trace_events: tuple[str, ...]       # L0 QEMU trace events of its INTx line, if its own

    def qemu_args(self) -> list[str]: ...
    def attach(self, l1: L1Guest) -> float: ...
    def push(self, n: int = 1) -> None: ...
    def counters(self) -> JsonObject | None: ...
    def close(self) -> None: ...


class SocketDevice:
    """A QEMU device whose receive side is a chardev on a UNIX socket the rig listens on:
    each byte the rig writes is one RX interrupt for whoever drives the device."""

    name: str = ""
    pci_id: tuple[str, str] = ("", "")      # vendor, device as sysfs shows them
    needs_nointxmask = True   # QEMU's devices can mask INTx: force vfio's non-2.3 path
    l0_trace_events: tuple[str, ...] = ()   # QEMU's own device: its line is the IC's input
    migratable = True
    hotplugged = False

    def __init__(self, machine: MachineProfile, run_dir: RunDir, twin: bool = False):
        self.twin = twin          # a second one on the same INTx line (the exclusive scenario)
        self.sock_path = run_dir / "dev0.sock"
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(self.sock_path))
        self.listener.listen(1)
        self.machine = machine
        self.conn: socket.socket | None = None

    def _placed(self, slot: str) -> str:
        """-device options that put it on the machine's bus for it, at `slot` if one is given."""
        bus = f",bus={self.machine.device_bus}" if self.machine.device_bus else ""
        return f"{bus},{slot}" if slot else bus

    @property
    def bus(self) -> str:
        """Its bus, and its slot where its twin shares its INTx line."""
        return self._placed(self.machine.shared_line[0] if self.twin else "")

    def device_args(self) -> list[str]:
        raise NotImplementedError

    def twin_args(self) -> list[str]:
        """The twin: the same device, no chardev (it never interrupts), at the slot whose INTA
        meets the device's on one line."""
        raise NotImplementedError

    @property
    def twin_bus(self) -> str:
        return self._placed(self.machine.shared_line[1])

    def qemu_args(self) -> list[str]:
        return [*self.machine.device_bus_args, "-chardev", f"socket,id=dev0,path={option_value(self.sock_path)}",
                *self.device_args(), *(self.twin_args() if self.twin else ())]

    def connected(self, timeout: float = timeouts.DEVICE_CONNECT_S) -> None:
        """After QEMU started: accept its chardev connection. One from a QEMU that is gone
        already (a snapshot that did not restore) is passed over."""
        self.listener.settimeout(timeout)
        try:
            while True:
                conn, _ = self.listener.accept()
                ready, _, _ = select.select([conn], [], [], 0)
                if not ready or conn.recv(1, socket.MSG_PEEK):
                    self.conn = conn
                    return
                conn.close()
        except TimeoutError:
            raise InfraError(f"L0 QEMU did not connect the {self.name} chardev") from None

    def attach(self, l1: L1Guest) -> float:
        """L1 is up (booted or restored): its QEMU has connected the chardev."""
        self.connected()
        return 0.0

    def push(self, n: int = 1) -> None:
        if self.conn is None:
            raise InfraError(f"{self.name}: L0 QEMU has not connected its chardev")
        self.conn.sendall(b"a" * n)

    def counters(self) -> JsonObject | None:
        return None

    def close(self) -> None:
        for s in (self.conn, self.listener):
            if s:
                s.close()


class PciSerial(SocketDevice):
    name = DeviceKind.PCI_SERIAL
    pci_id = PCI_SERIAL_ID

    def device_args(self) -> list[str]:
        return ["-device", f"pci-serial,chardev=dev0,id=legacy0{self.bus}"]

    def twin_args(self) -> list[str]:
        return ["-device", f"pci-serial,id=twin0{self.twin_bus}"]


class VirtioSerial(SocketDevice):
    """Port 0 (a console, nr=0) of a virtio-serial device. max_ports=1: no multiport
    feature, so neither L2's virtio_console nor L1's userspace consumer needs the control
    queues; with them, L2's driver needs several interrupts before its port exists, and an
    unfixed L1 stalls after the first (an ERROR instead of the STALL). vectors=0: no MSI-X,
    so INTx; disable-legacy: MMIO BARs only; iommu_platform: its DMA goes through the IOMMU,
    without which a device passed on to L2 would write to the wrong pages."""

    name = DeviceKind.VIRTIO_SERIAL
    pci_id = ("0x1af4", "0x1043")
    l0_trace_events = VIRTIO_CONSOLE_EVENTS

    OPTIONS = "max_ports=1,vectors=0,disable-legacy=on,iommu_platform=on"

    def device_args(self) -> list[str]:
        return ["-device", f"virtio-serial-pci,{self.OPTIONS},id=legacy0{self.bus}",
                "-device", "virtconsole,chardev=dev0,bus=legacy0.0,nr=0"]

    def twin_args(self) -> list[str]:
        return ["-device", f"virtio-serial-pci,{self.OPTIONS},id=twin0{self.twin_bus}"]


class PciSerial23(PciSerial):
    """pci-serial taking vfio's 2.3 path: vfio masks it with the command register's INTx
    disable bit and tells its own interrupts from the status register's (QEMU keeps both)."""

    name = DeviceKind.PCI_SERIAL_2_3
    needs_nointxmask = False


class VirtioSerial23(VirtioSerial):
    """The virtio console taking vfio's 2.3 path, as PciSerial23."""

    name = DeviceKind.VIRTIO_SERIAL_2_3
    needs_nointxmask = False


class LegacyDevice:
    """device_models.serve as a child process (dies with the rig), over vfio-user."""

    name: str = DeviceKind.LEGACY
    pci_id = PCI_SERIAL_ID      # the model borrows pci-serial's IDs: 8250_pci drives it in L2
    needs_nointxmask = False
    l0_trace_events: tuple[str, ...] = VFIO_USER_EVENTS   # its INTx arrives at L0 QEMU over vfio-user
    migratable = False        # vfio-user devices cannot migrate

    def __init__(self, machine: MachineProfile, run_dir: RunDir, pci_2_3: bool = False,
                 log_path: Path | None = None, hotplug: bool = False):
        self.machine = machine
        # Added to L1 once it runs, where the machine has a bus for it: L1 alone is then
        # saved and restored, and every run of the cell attaches the device the same way.
        self.hotplugged = hotplug and machine.hotplug_bus is not None
        self.pci_2_3 = pci_2_3
        self.name = DeviceKind.LEGACY_2_3 if pci_2_3 else DeviceKind.LEGACY
        self.sock_path = run_dir / "vfu.sock"
        self.ctl_path = run_dir / "vfu-ctl.sock"
        cmd = [sys.executable, "-m", "device_models.serve", "--socket", str(self.sock_path),
               "--control", str(self.ctl_path)] + (["--pci-2-3"] if pci_2_3 else [])
        self._log: TextIO | None = open(log_path, "w") if log_path else None
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._log or subprocess.DEVNULL, text=True,
                                     preexec_fn=die_with_parent())
        (run_dir / "legacy-device.pid").write_text(f"{self.proc.pid}\n")
        self._wait_ready(timeouts.DEVICE_MODEL_READY_S)
        self.control = ControlClient(str(self.ctl_path))

    def _wait_ready(self, timeout: float) -> None:
        stdout = self.proc.stdout
        assert stdout is not None       # PIPE
        ready, _, _ = select.select([stdout], [], [], timeout)
        line = stdout.readline() if ready else ""
        if line.strip() != "READY":
            self.close()
            raise InfraError(f"the legacy device model did not start (said {line.strip()!r})")

    def device_spec(self) -> JsonObject:
        """The vfio-user-pci device as -device JSON and QMP device_add take it."""
        dev: JsonObject = {"driver": "vfio-user-pci", "id": "legacy0",
                           "socket": {"path": str(self.sock_path), "type": "unix"}}
        bus = self.machine.hotplug_bus if self.hotplugged else self.machine.device_bus
        if bus:
            dev["bus"] = bus
        return dev

    def qemu_args(self) -> list[str]:
        if self.hotplugged:
            return list(self.machine.hotplug_bus_args)
        return [*self.machine.device_bus_args, "-device", json.dumps(self.device_spec(), separators=(",", ":"))]

    def attach(self, l1: L1Guest) -> float:
        """L1 is up: a device there from the start needs nothing (QEMU negotiated with the
        model at realize); a hotplugged one is added now and waited for on L1's bus. The
        seconds it took."""
        if not self.hotplugged:
            return 0.0
        t0 = time.monotonic()
        l1.machine.cmd("device_add", **self.device_spec())
        wait_on_bus(l1.ssh, self.pci_id, f"L1: the hotplugged {self.name} device")
        return time.monotonic() - t0

    def push(self, n: int = 1) -> None:
        self.control.push(n)

    def counters(self) -> JsonObject | None:
        return self.control.counters()

    def close(self) -> None:
        if getattr(self, "control", None):
            self.control.close()
        if self.proc.poll() is None:
            if self.proc.stdin:
                self.proc.stdin.close()   # serve exits when stdin closes
            wait_or_kill(self.proc, timeouts.DEVICE_MODEL_EXIT_S)
        if self._log:
            self._log.close()


def wait_on_bus(ssh: GuestSSH, pci_id: tuple[str, str], what: str) -> None:
    """Until a hotplugged device is on the guest's bus with its driver (rig/chain/sh/wait_pci.sh)."""
    r = ssh.run(guest_script("rig.chain", "wait_pci.sh", *pci_id, str(int(timeouts.DEVICE_HOTPLUG_S))),
                timeout=timeouts.DEVICE_HOTPLUG_S + timeouts.SSH_QUICK_S)
    if r.status != 0:
        raise InfraError(f"{what} did not appear on its bus within {timeouts.DEVICE_HOTPLUG_S:.0f} s: "
                         f"{(r.stderr or r.stdout).strip()[-300:]}")


def make_device(kind: str, machine: MachineProfile, qemu: QemuBinary, run_dir: RunDir, log_dir: Path,
                hotplug: bool = False, twin: bool = False) -> Device:
    """The device; `hotplug`: a device that cannot migrate is added once L1 runs, where
    the machine has a bus for that (so that L1 can be saved and restored without it);
    `twin`: a second one on its INTx line (rig.core.spec.scenario_problem says which can)."""
    kind = DeviceKind(kind)     # rig.core.spec validated it
    if kind in (DeviceKind.LEGACY, DeviceKind.LEGACY_2_3):
        if not qemu.has_device("vfio-user-pci"):
            raise UserError(f"--device {kind} needs -device vfio-user-pci (QEMU >= 10.1); "
                            f"{qemu.describe()} lacks it: use --device pci-serial")
        return LegacyDevice(machine, run_dir, pci_2_3=kind == DeviceKind.LEGACY_2_3,
                            log_path=log_dir / "legacy-device.log", hotplug=hotplug)
    return SOCKET_DEVICES[kind](machine, run_dir, twin)


SOCKET_DEVICES: dict[DeviceKind, type[SocketDevice]] = {
    DeviceKind.PCI_SERIAL: PciSerial, DeviceKind.VIRTIO_SERIAL: VirtioSerial,
    DeviceKind.PCI_SERIAL_2_3: PciSerial23, DeviceKind.VIRTIO_SERIAL_2_3: VirtioSerial23}

"""An L1 guest started by L0: its QEMU command line (from the target profile) and its
boot sequence (console prompt, then SSH), with the timings of each step."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from guest_images.build import GuestImage
from rig.core import timeouts
from rig.core.errors import InfraError
from rig.core.kinds import Accelerator
from rig.core.progress import Progress
from rig.core.targets import MachineProfile, TargetProfile, machine
from rig.guests.machine import QemuMachine
from rig.guests.snapshot import BadSnapshot, SnapshotStore, snapshot_key
from rig.guests.ssh import GuestSSH
from rig.host.accel import Accel
from rig.host.keys import KeySet
from rig.host.qemu import QemuBinary
from rig.host.rundir import RunDir

READY_LINE = r"rig-init: ready role=(\S+) kernel=(\S+)\r?\n"


@dataclass
class GuestConfig:
    memory_mb: int = 2048
    smp: int = 1
    kernel: Path | None = None      # overrides the image's kernel (same initramfs)
    extra_args: list[str] = field(default_factory=list)
    extra_cmdline: str = ""
    ic: str | None = None           # interrupt controller where the machine has a choice
    machine: MachineProfile | None = None   # None: the arch's default machine
    snapshots: SnapshotStore | None = None  # restore a booted L1 from here, or save one
    before_start: Callable[[QemuMachine], None] | None = None   # over QMP while paused (-S)


@dataclass
class BootTimes:
    console_ready: float = 0.0   # L0 start -> "rig-init: ready" on the console (0 if restored)
    ssh_ready: float = 0.0       # L0 start -> first SSH command answered
    restored: bool = False       # from a snapshot (rig.guests.snapshot), not booted
    snapshot_s: float = 0.0      # restoring it, or saving the one this boot made
    snapshot: str = ""           # that snapshot's key


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kernel_cmdline(profile: TargetProfile, extra: str = "") -> str:
    parts = [f"console={profile.console}", "panic=-1", "loglevel=4", *profile.cmdline]
    return " ".join(parts + ([extra] if extra else []))


def l1_qemu_args(profile: TargetProfile, image: GuestImage, accel: Accel, ssh_port: int,
                 config: GuestConfig) -> list[str]:
    mach = config.machine or machine(profile.name)
    cpu = profile.kvm_cpu if accel.name == Accelerator.KVM else mach.cpu
    nic_bus = f",bus={mach.nic_bus}" if mach.nic_bus else ""
    args = ["-M", mach.l1_machine(accel.name, config.ic, nesting=accel.l1_nests), *accel.qemu_args(),
            *(("-cpu", cpu) if cpu else ()), "-m", str(config.memory_mb), "-smp", str(config.smp),
            "-kernel", str(config.kernel or image.kernel), "-initrd", str(image.initrd),
            "-append", kernel_cmdline(profile, config.extra_cmdline),
            # restrict=on: L1 (the kernel under test) reaches nothing on L0 or beyond, not even
            # L0's loopback (other chains' SSH ports); only the forwarded SSH port reaches it.
            "-netdev", f"user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:{ssh_port}-:22",
            # romfile= : no PXE option ROM to load, nothing to boot from the network
            *mach.l0_args,
            "-device", f"{profile.nic_model},netdev=net0,romfile={nic_bus}"]
    for dev in mach.l1_devices:
        args += ["-device", dev]
    if config.before_start:
        args.append("-S")
    return args + config.extra_args


class L1Guest:
    """L1 as L0 runs it: QemuMachine + SSH, booted and torn down as one."""

    def __init__(self, profile: TargetProfile, qemu: QemuBinary, image: GuestImage, accel: Accel,
                 keys: KeySet, run_dir: RunDir, log_dir: Path, progress: Progress,
                 config: GuestConfig | None = None):
        self.profile, self.image, self.accel, self.progress = profile, image, accel, progress
        self.config = config or GuestConfig()
        self.ssh_port = free_tcp_port()
        self.qemu = qemu
        self.args = l1_qemu_args(profile, image, accel, self.ssh_port, self.config)
        self.machine = QemuMachine("l1", qemu, self.args, run_dir, log_dir, progress)
        self.ssh = GuestSSH("l1", keys)
        self.times = BootTimes()
        self.kernel_release = ""

    def snapshot_key(self) -> str:
        """Of L1 as it boots: a restore adds -incoming to the machine's arguments, which
        must not change the key (a chain saved after a restore is looked up before one)."""
        return snapshot_key(self.machine.command_line(self.args), self.qemu, self.machine.run_dir.path,
                            self.machine.log_dir)

    def boot(self, timeout: float = timeouts.BOOT_COMMAND_BOOT_S) -> BootTimes:
        """L1 up and answering SSH: restored from a snapshot where there is one (a snapshot
        that does not restore is dropped, and L1 boots), else booted, and then saved."""
        store = self.config.snapshots
        if store is None:
            return self._boot(timeout)
        key = self.snapshot_key()
        self.times.snapshot = key
        stream = store.lookup(key)
        if stream and self.restore_from(store, stream):
            store.restored(stream.parent)
            return self.times
        times = self._boot(timeout)
        saved = store.save(self.machine, key)
        if saved is not None:
            times.snapshot_s = saved
            self.progress.note(f"L1 saved as a snapshot in {saved:.1f} s (later runs restore it)")
        return times

    def restore_from(self, store: SnapshotStore, stream: Path, what: str = "L1") -> bool:
        """L1 restored from this snapshot (`what` it holds, for the progress line); False
        (L1 ready to boot again; the snapshot removed if it proved bad) if it did not."""
        try:
            self.restore(store, stream)
            return True
        except InfraError as e:
            self.drop_snapshot(store, stream, str(e), what, proven=isinstance(e, BadSnapshot))
            return False

    def drop_snapshot(self, store: SnapshotStore, stream: Path, why: str, what: str = "L1",
                      proven: bool = False) -> None:
        """A snapshot that did not come back: removed if that proves it bad (else kept, the
        failure counted), and this L1 made ready to boot cold."""
        removed = store.failed(stream.parent, why, proven)
        self.progress.note(f"{what} snapshot not restored ({'removed' if removed else 'kept'}), "
                           f"booting instead: {why}")
        self.times = BootTimes(snapshot=self.times.snapshot)
        self.relaunch()

    def relaunch(self) -> None:
        """L1's QEMU stopped and a new one made ready with the same arguments, not started."""
        self.ssh.close()
        self.machine.close()
        self.machine = QemuMachine("l1", self.qemu, self.args, self.machine.run_dir,
                                   self.machine.log_dir, self.progress)

    def restore(self, store: SnapshotStore, stream: Path) -> BootTimes:
        """Started from the stream and answering SSH (InfraError, or BadSnapshot, if not)."""
        self.progress.step(f"restoring L1 ({self.profile.name}, {self.accel}) from a snapshot")
        self.machine.args = [*self.args, "-incoming", "defer"]
        self.machine.launch()
        t0 = self.machine.started_at
        self.times.snapshot_s = store.restore(self.machine, stream)
        self.times.restored = True
        if (state := self.machine.run_state()) in self.machine.DEAD_STATES:
            raise BadSnapshot(f"snapshot {stream.parent.name}: the restored L1 is {state!r}")
        self._connect(t0, timeouts.L1_RESTORED_SSH_S)
        # The guest's clock stopped when it was saved: set it (L1's ftrace is placed on
        # L0's clock by its own marker either way). Its console says where it came from.
        now = time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())
        self.kernel_release = self.ssh.run(
            f"date -u -s '{now}' >/dev/null; echo 'rig: L1 restored from snapshot {stream.parent.name}' "
            ">/dev/console; uname -r", timeout=timeouts.SSH_QUICK_S).stdout.strip()
        self.progress.note(f"L1 restored in {self.times.snapshot_s:.1f} s, SSH ready after "
                           f"{self.times.ssh_ready:.1f} s (kernel {self.kernel_release})")
        return self.times

    def _boot(self, timeout: float) -> BootTimes:
        mach = self.config.machine or machine(self.profile.name)
        self.progress.step(f"starting L1 ({self.profile.name} {mach.name}, {self.accel})")
        self.machine.launch()
        if self.config.before_start:
            self.config.before_start(self.machine)  # e.g. switch trace events on
            self.machine.cmd("cont")
        t0 = self.machine.started_at
        m = self.machine.expect_console(READY_LINE, timeout, "the L1 init's ready line")
        self.kernel_release = m.group(2)
        self.times.console_ready = time.monotonic() - t0
        self.progress.note(f"L1 console ready after {self.times.console_ready:.1f} s "
                           f"(kernel {self.kernel_release})")
        self._connect(t0)
        self.progress.note(f"L1 SSH ready after {self.times.ssh_ready:.1f} s")
        return self.times

    def _connect(self, t0: float, timeout: float = timeouts.L1_SSH_S) -> None:
        self.machine.check_alive()
        try:
            self.ssh.connect("127.0.0.1", self.ssh_port, timeout=timeout, alive=self.machine.check_alive)
        except InfraError as e:
            raise InfraError(f"{e}; on the console: {self.console_diagnosis()}") from e
        self.ssh.run("true", timeout=timeouts.SSH_QUICK_S, check=True)
        self.times.ssh_ready = time.monotonic() - t0

    def console_diagnosis(self) -> str:
        """What the console shell says about networking and sshd, when SSH is not up."""
        try:
            if self.machine.console is None:
                return "(no console)"
            out = self.machine.console.run("ip -o -4 addr; pidof dropbear || echo no dropbear",
                                           timeouts.CONSOLE_COMMAND_S)
            return " | ".join(line.strip() for line in out.splitlines() if line.strip())
        except InfraError as e:
            return f"(the console did not answer either: {e})"

    def shutdown(self, timeout: float = timeouts.L1_POWERDOWN_S, powerdown: bool = True) -> str:
        self.ssh.close()
        how = self.machine.shutdown(timeout, powerdown)
        self.progress.note(f"L1 shut down ({how})")
        return how

    def close(self) -> None:
        self.ssh.close()
        self.machine.close()

    def __enter__(self) -> L1Guest:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


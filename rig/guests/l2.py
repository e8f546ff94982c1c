"""An L2 guest as L1 runs it: L1's own qemu-system-* started over an SSH channel into L1.

L2 QEMU runs in a session of its own in L1 (setsid), its console (and its own stderr) going
to a file in L1 that an SSH channel follows (tail -f) into pexpect and the log: so it
outlives the SSH connection that started it, and an L1 saved with a booted L2 in it
(rig.guests.snapshot) has that L2 running again when restored, reached anew (attach). When
it exits, the wrapper appends its exit status to the console file. Its QMP (a TCP port in
L1) and its SSH are reached through L1 (direct-tcpip channels). One L2Guest is one L2 QEMU
process: start or attach, watch, diagnose, stop.
"""

from __future__ import annotations

import re
import shlex
import time
from pathlib import Path

import paramiko
from qemu.qmp import QMPError
from qemu.qmp.legacy import QEMUMonitorProtocol

from rig.core import timeouts
from rig.core.errors import InfraError
from rig.core.json_object import JsonObject
from rig.core.progress import Progress
from rig.core.targets import TargetProfile
from rig.guests.console import Console, ConsoleTimeout
from rig.guests.l1 import READY_LINE, L1Guest
from rig.guests.relay import ChannelRelay
from rig.guests.ssh import GuestSSH
from rig.host.qemu import SANDBOX

SSH_PORT = 2222          # in L1, forwarded to L2's dropbear
QMP_PORT = 4444          # in L1, L2 QEMU's QMP
PASSTHROUGH_ID = "passthrough0"
PIDFILE = "/run/l2-qemu.pid"
CONSOLE_FILE = "/run/l2-console.log"
EXIT_LINE = r"rig-l2-exit: (\d+)"
RESET_MARK = "rig: L2 reset by its QEMU"


def launch_script(command: list[str]) -> str:
    """What the SSH channel runs in L1: L2 QEMU in a session of its own, its console file
    (emptied first, so the follower never waits on a missing file), then the follower."""
    if "-sandbox" in command:       # QEMU has -sandbox only on a kernel with seccomp filters
        at = command.index("-sandbox")
        command, sandbox = command[:at] + command[at + 2:], command[at:at + 2]
        where = f"if grep -q '^Seccomp_filters:' /proc/self/status; then set -- {shlex.join(sandbox)}; fi; "
    else:
        where = ""
    qemu = " ".join(shlex.quote(c) for c in command)
    inner = f'set --; {where}{qemu} "$@" 2>> {CONSOLE_FILE}; echo "rig-l2-exit: $?" >> {CONSOLE_FILE}'
    return (f": > {CONSOLE_FILE}; setsid sh -c {shlex.quote(inner)} < /dev/null > /dev/null 2>&1 & "
            f"exec tail -n +1 -f {CONSOLE_FILE}")


def vcpu_pc(info_registers: str) -> tuple[str, int] | None:
    """The first vCPU's program counter in HMP `info registers`: x86 RIP= (EIP= in 32-bit
    and real mode), POWER NIP."""
    m = re.search(r"\b(RIP|EIP|NIP)[ =]+([0-9a-fA-F]{8,16})\b", info_registers)
    return (m.group(1), int(m.group(2), 16)) if m else None


class L2BootFailed(InfraError):
    """L2's init never printed its ready line (L1 is fine)."""


class L2BootHung(L2BootFailed):
    """... and L2 QEMU still runs."""


class L2BootCrashed(L2BootFailed):
    """... because L2 QEMU exited: a panic (-no-reboot), or QEMU itself failed."""


class L2Exited(InfraError):
    """L2 QEMU is gone (its exit status was appended to its console)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


# What a dying L2 or its QEMU prints that says why (kernel oops and panic lines, QEMU's own).
CRASH_LINE = re.compile(r"Kernel panic|BUG:|Oops|RIP: |NIP |general protection|qemu-system")


def kernel_cmdline_l2(profile: TargetProfile) -> str:
    l2 = profile.l2
    return " ".join([f"console={l2.console}", "panic=-1", "loglevel=4", *l2.cmdline])


def l2_command(profile: TargetProfile, accel: str, l1_device: str | None) -> list[str]:
    """L1's QEMU command line for L2, with L1's device `l1_device` passed through; None: the
    device joins L2 later (passthrough_spec), on the bus this leaves empty for it."""
    l2 = profile.l2
    passthrough = (["-device", f"vfio-pci,host={l1_device},id={PASSTHROUGH_ID}"] if l1_device
                   else list(l2.hotplug_bus_args))
    return [f"/usr/bin/{profile.qemu_system}", "-nodefaults", "-no-user-config",
            "-display", "none", "-no-reboot", "-M", l2.machine(accel), "-accel", accel,
            "-cpu", l2.cpu(accel), "-m", str(l2.memory_mb), "-smp", "1",
            "-kernel", "/l2/kernel", "-initrd", "/l2/initrd", "-append", kernel_cmdline_l2(profile),
            "-chardev", f"file,id=con,path={CONSOLE_FILE},append=on", "-serial", "chardev:con",
            "-netdev", f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{SSH_PORT}-:22",   # L2 reaches nothing in L1
            "-sandbox", SANDBOX,
            "-device", f"{profile.nic_model},netdev=n0,romfile=",
            *passthrough,
            "-qmp", f"tcp:127.0.0.1:{QMP_PORT},server=on,wait=off",
            *l2.extra_args]


def passthrough_spec(profile: TargetProfile, l1_device: str) -> JsonObject:
    """L1's device as QMP device_add adds it to a running L2 (the bus l2_command left for it)."""
    return {"driver": "vfio-pci", "host": l1_device, "id": PASSTHROUGH_ID, "bus": profile.l2.hotplug_bus}


def boot_l2(l1: L1Guest, command: list[str], out: Path, progress: Progress, kvm: bool,
            timeout: float, hang_s: float, failures: list[str]) -> tuple[L2Guest, float]:
    """Start L2 and wait for its init; (the guest, seconds it took). L2 is started again
    if its boot failed: it crashed (TCG inside TCG once oopsed in early boot, 1 of 85
    runs), or, under KVM, it is not up after hang_s (it boots in 15-60 s; its vCPU spun on
    jiffies_lock early in boot in 2 of 40 x86 runs, and once on the start after a failed
    one, so a KVM L2 gets two more starts, a TCG one, which boots for minutes, one). Each
    failure is diagnosed first and appended to `failures` (result.json
    chain.l2_boot_failures), its console kept. The drive has not begun: no verdict is
    retried. The last failure, or a TCG L2 that hangs for the whole timeout, is raised
    (an ERROR)."""
    log_path = out / "l2-console.log"
    limits = [min(timeout, hang_s)] * 2 + [timeout] if kvm else [timeout, timeout]
    for attempt, limit in enumerate(limits, 1):
        progress.step(f"L1: starting L2 ({'KVM' if kvm else 'TCG'})")
        l2 = L2Guest(l1, command, log_path, out)
        try:
            return l2, l2.start(limit)
        except L2BootFailed as e:
            failures.append(str(e))
            if attempt == len(limits) or (isinstance(e, L2BootHung) and not kvm):
                raise
            progress.note(f"L2 did not come up; stopping it and starting it again ({e})")
            l2.stop()
            failed = log_path.rename(out / failed_console_name(attempt))
            failures[-1] += f" (its console: {failed.name})"
    raise AssertionError("unreachable: the last attempt returns or raises")


def failed_console_name(attempt: int) -> str:
    """Where the console of L2's failed start number `attempt` is kept."""
    return "l2-console-failed.log" if attempt == 1 else f"l2-console-failed-{attempt}.log"


def registers_name(n: int) -> str:
    return "l2-registers.txt" if n == 1 else f"l2-registers-{n}.txt"


class L2Guest:
    def __init__(self, l1: L1Guest, command: list[str], console_log: Path, out: Path):
        self.l1, self.out = l1, out
        self.command = command + ["-pidfile", PIDFILE]
        self.console_log = console_log
        self.ssh = GuestSSH("l2", l1.ssh.keys)
        self.channel: paramiko.Channel | None = None
        self.console: Console | None = None
        self.qmp: QEMUMonitorProtocol | None = None
        self.kernel_release = ""
        self._relays: list[ChannelRelay] = []
        self._qmp_relay: ChannelRelay | None = None

    # -- start ------------------------------------------------------------------------
    def start(self, timeout: float) -> float:
        """Start L2 QEMU in L1 and wait for L2's init; returns the seconds it took.
        L2BootHung (with what its QEMU and L1 say) if the ready line did not come."""
        self._follow(launch_script(self.command))
        assert self.console is not None
        t0 = time.monotonic()
        try:
            m = self.console.expect_while(READY_LINE, timeout, "the L2 init's ready line", self.check_alive)
        except ConsoleTimeout as e:
            raise L2BootHung(f"{e}; {self.diagnosis()}") from e
        except InfraError as e:
            self.l1.machine.check_running()       # L1 gone: that is the error, not L2's boot
            status = self.exit_status(timeouts.QEMU_EXIT_S)
            if status is None:
                raise
            raise L2BootCrashed(f"l2: QEMU exited with status {status} "
                                f"before the L2 init's ready line; {self.crash_lines()}") from e
        self.kernel_release = m.group(2)
        return time.monotonic() - t0

    def attach(self, kernel_release: str) -> None:
        """Follow an L2 that is already running (restored inside L1): its console from the
        start of the file, then SSH and QMP anew (connect)."""
        self._follow(f"exec tail -n +1 -f {CONSOLE_FILE}")
        self.kernel_release = kernel_release
        self.check_alive()

    def _follow(self, command: str) -> None:
        chan = self.l1.ssh.open_session()
        chan.set_combine_stderr(True)
        chan.exec_command(command)
        self.channel = chan
        relay = ChannelRelay(chan, "l2-console")
        self._relays.append(relay)
        self.console = Console.over(relay.local, "l2", self.console_log)

    def exit_status(self, timeout: float) -> int | None:
        """L2 QEMU's exit status once its wrapper wrote it to the console; None if it did
        not within timeout (still running, or L1 gone)."""
        if self.console is None:
            return None
        m = self.console.seen(EXIT_LINE)
        if m is None:
            try:
                m = self.console.expect(EXIT_LINE, timeout, "L2 QEMU's exit")
            except InfraError:
                return None
        return int(m.group(1))

    def connect(self, timeout: float) -> float:
        """SSH into L2 and its QEMU's QMP, both through L1; returns the seconds SSH took."""
        took = self.ssh.connect("127.0.0.1", SSH_PORT, timeout=timeout, alive=self.check_alive,
                                sock=lambda: self.l1.ssh.jump_channel("127.0.0.1", SSH_PORT))
        self._connect_qmp()
        return took

    def reboot(self, timeout: float, ssh_timeout: float) -> float:
        """L2 reset by its QEMU (QMP system_reset: a machine reset, which resets the device
        passed through and turns its INTx off and on again through vfio), then back: its
        init's ready line and SSH. The seconds it took."""
        t0 = time.monotonic()
        self.ssh.close()
        assert self.console is not None     # started or attached
        # The console from here on: an attached one was read from the file's start, with the
        # first boot's ready line still unread.
        self.l1.ssh.run(f"echo '{RESET_MARK}' >> {CONSOLE_FILE}", timeout=timeouts.SSH_QUICK_S)
        self.console.expect(RESET_MARK, timeouts.SSH_QUICK_S, "the rig's mark before L2's reset")
        # -no-reboot makes a reset end L2's QEMU (so that a panic ends it): resets reset until
        # L2 is back (the firmware may reset the machine once more on its way).
        self._set_reboot_action("reset")
        try:
            self._connect_qmp().cmd("system_reset")
        except QMPError as e:
            raise InfraError(f"L2 QEMU did not reset: {e}") from e
        try:
            self.console.expect_while(READY_LINE, timeout, "the L2 init's ready line after its reset",
                                      self.check_alive)
        except ConsoleTimeout as e:
            raise L2BootHung(f"{e}; {self.diagnosis()}") from e
        self._set_reboot_action("shutdown")
        self.connect(ssh_timeout)
        return time.monotonic() - t0

    def _set_reboot_action(self, action: str) -> None:
        try:
            self._connect_qmp().cmd("set-action", reboot=action)
        except QMPError as e:
            raise InfraError(f"L2 QEMU did not take reboot action {action}: {e}") from e

    def monitor(self) -> QEMUMonitorProtocol:
        """L2 QEMU's QMP (in L1), for a look at a held chain."""
        return self._connect_qmp()

    def _connect_qmp(self) -> QEMUMonitorProtocol:
        if self.qmp:
            return self.qmp
        try:
            chan = self.l1.ssh.jump_channel("127.0.0.1", QMP_PORT)
        except Exception as e:  # noqa: BLE001 - paramiko raises several kinds here
            raise InfraError(f"L1: cannot reach L2 QEMU's QMP port: {e}") from e
        relay = ChannelRelay(chan, "l2-qmp")
        self._relays.append(relay)
        self._qmp_relay = relay
        qmp = QEMUMonitorProtocol(relay.local)
        try:
            # The legacy class's connect() has no time limit, and QEMU greets one client at
            # a time: bound the wait (its own event loop, as connect() runs it).
            qmp._qmp.await_greeting = qmp._qmp.negotiate = True
            qmp._sync(qmp._qmp.connect(qmp._address), timeouts.QMP_COMMAND_S)
            qmp.settimeout(timeouts.QMP_COMMAND_S)
        except (QMPError, OSError, TimeoutError) as e:
            raise InfraError(f"L2 QEMU's QMP did not answer within {timeouts.QMP_COMMAND_S:.0f} s: {e}") from e
        self.qmp = qmp
        return qmp

    def pause(self) -> None:
        """L2's vCPUs stopped (QMP stop), so that none of L1's vCPUs is inside L2 when L1 is
        saved: L0's QEMU keeps a nested guest's entry state (pseries H_ENTER_NESTED) outside
        the migration stream, and a vCPU saved inside L2 comes back lost."""
        try:
            self._connect_qmp().cmd("stop")
        except QMPError as e:
            raise InfraError(f"L2 QEMU did not stop: {e}") from e

    def resume(self) -> None:
        """L2's vCPUs running again (QMP cont), in this run or in one that restored it."""
        qmp = self._connect_qmp()
        try:
            status = qmp.cmd("query-status")
            if not isinstance(status, dict) or status.get("status") != "running":
                qmp.cmd("cont")
        except QMPError as e:      # a failed restore adds diagnosis() (its run state) to this
            raise InfraError(f"L2 QEMU did not run again: {e}") from e

    def add_device(self, spec: JsonObject) -> None:
        """A device added to the running L2 by its QEMU (QMP device_add)."""
        try:
            self._connect_qmp().cmd("device_add", **spec)
        except QMPError as e:
            raise InfraError(f"L1's QEMU did not add {spec.get('driver')} to L2: {e}") from e

    def run_state(self) -> str:
        """L2 QEMU's run state (QMP query-status)."""
        try:
            status = self._connect_qmp().cmd("query-status")
        except QMPError as e:
            raise InfraError(f"L2 QEMU's run state could not be read: {e}") from e
        return str(status.get("status") if isinstance(status, dict) else status)

    def release_monitor(self) -> None:
        """Let go of L2 QEMU's QMP (it serves one client): before L1 is saved with L2 in it,
        so that a restored L2 greets the next run's connection."""
        if self.qmp:
            try:
                self.qmp.close()
            except Exception:  # noqa: BLE001 - closing a connection that may be gone
                pass
            self.qmp = None
        if self._qmp_relay:   # closed here, not when its thread notices: L1 may be saved next
            self._qmp_relay.close()
            self._relays.remove(self._qmp_relay)
            self._qmp_relay = None

    # -- watch --------------------------------------------------------------------------
    def check_alive(self) -> None:
        """Raises if L2 QEMU or L1 is gone."""
        if self.channel is None or self.console is None:
            raise InfraError("L2 QEMU was not started")
        m = self.console.seen(EXIT_LINE)
        if m:
            raise L2Exited(int(m.group(1)), f"L2 QEMU exited with status {m.group(1)} (see {self.console_log})")
        if self.channel.exit_status_ready():
            raise InfraError(f"L1 stopped following L2's console (status {self.channel.recv_exit_status()}; "
                             f"see {self.console_log})")
        self.l1.machine.check_running()

    def diagnosis(self) -> str:
        """For an L2 that never printed its ready line: its QEMU's run state, where its vCPU
        is (the whole `info registers` goes to l2-registers.txt), named from L1's kallsyms
        when L2 runs L1's kernel (both boot with nokaslr: the addresses are the same), and
        L1's last kernel messages (KVM's complaints). Best effort: it only explains an ERROR."""
        facts = []
        try:
            qmp = self._connect_qmp()
            status: dict[str, object] = qmp.cmd("query-status")  # type: ignore[assignment]
            facts.append(f"L2 QEMU status {status.get('status')}")
            regs = str(qmp.cmd("human-monitor-command", **{"command-line": "info registers"}))
            kept = self._registers_file()
            kept.write_text(regs)
            pc = vcpu_pc(regs)
            if pc:
                facts.append(f"vCPU at {pc[0]}={pc[1]:x}{self._symbol(pc[1])} ({kept.name})")
        except (InfraError, QMPError, OSError) as e:
            facts.append(f"L2 QEMU's QMP: {e}")
        try:
            dmesg = self.l1.ssh.run("dmesg | tail -n 3", timeout=timeouts.SSH_QUICK_S).stdout.strip()
            facts.append("L1 dmesg: " + " | ".join(dmesg.splitlines()))
        except InfraError as e:
            facts.append(f"L1 dmesg: {e}")
        return "; ".join(facts)

    def _registers_file(self) -> Path:
        """l2-registers.txt, or -2, -3 ... for a later failed start: each diagnosis keeps its own."""
        n = 1
        while (self.out / registers_name(n)).exists():
            n += 1
        return self.out / registers_name(n)

    def crash_lines(self, most: int = 4) -> str:
        """The last lines of L2's console that say why it died (see the log for the rest)."""
        try:
            lines = self.console_log.read_text(errors="replace").splitlines()
        except OSError as e:
            return f"console log unreadable: {e}"
        why = [ln.strip() for ln in lines if CRASH_LINE.search(ln)][-most:]
        return " | ".join(why or [ln.strip() for ln in lines if ln.strip()][-2:])

    def _symbol(self, addr: int) -> str:
        """The function addr is in, as " in fn+0xoff", from L1's /proc/kallsyms when L2
        runs L1's kernel; else the empty string."""
        if self.l1.image.meta.get("l2_kernel_version") != self.l1.kernel_release:
            return ""
        a = f"{addr:016x}"
        r = self.l1.ssh.run(f"awk -v a={a} '$2 ~ /^[tTwW]$/ && $1 <= a && $1 > b {{b = $1; n = $3}} "
                            "END {print b, n}' /proc/kallsyms", timeout=timeouts.SSH_COMMAND_S)
        parts = r.stdout.split()
        if r.status != 0 or len(parts) != 2:
            return ""
        return f" in {parts[1]}+{addr - int(parts[0], 16):#x}"

    # -- stop ---------------------------------------------------------------------------
    def stop(self, timeout: float = timeouts.L2_STOP_S) -> None:
        """QMP quit, wait for it, then SIGKILL through L1 if it is still there: L1 has the
        device back when this returns (a restart opens it again)."""
        self._quit()
        if self.channel and self.exit_status(timeout) is None:
            try:
                self.l1.ssh.run(f"kill -9 $(cat {PIDFILE})", timeout=timeouts.SSH_QUICK_S)
            except InfraError:
                pass   # L1 is going down with it
        self.close()

    def _quit(self) -> None:
        if self.qmp:
            try:
                self.qmp.cmd("quit")
            except Exception:  # noqa: BLE001 - L2 may be gone already
                pass

    def close(self) -> None:
        """Ask L2 QEMU to quit without waiting (L1's powerdown takes it along) and close
        every channel: teardown, also on Ctrl-C, when L1 may not answer any more."""
        self._quit()
        if self.qmp:
            try:
                self.qmp.close()
            except Exception:  # noqa: BLE001
                pass
            self.qmp = None
        self.ssh.close()
        if self.console:
            self.console.close()
        for r in self._relays:
            r.close()
        self._relays, self._qmp_relay = [], None

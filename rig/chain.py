"""The nested chain: L0 runs L1 with a pci-serial device; L1 binds it to vfio-pci and runs
L2 with it passed through; the rig pushes bytes (RX interrupts) and counts at every layer.

Pacing: a new byte only after L2's reader got the previous one (plus a gap), so the
device never asserts while the previous interrupt is still in flight. QEMU's XIVE model
loses an assertion that arrives while masked and is still asserted at unmask even with
the fix (DESIGN.md 1); a paced device keeps a fixed kernel from ever looking stalled.
"""

from __future__ import annotations

import select
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import interrupts
from .errors import InfraError, UserError
from .guest import GuestConfig, L1Guest, kernel_cmdline
from .l2 import QMP_PORT, SSH_PORT, L2BootFailed, L2BootHung, L2Guest
from .path_trace import PathTracer
from .progress import Progress
from .ssh import GuestSSH
from .targets import TargetProfile
from .verdict import Sample, Verdict, final, judge

PCI_SERIAL = ("0x1b36", "0x0002")
CONSUMERS = ("l2", "userspace")
CONSUMER = "/usr/bin/rig-vfio-intx-consumer"   # guest_images/consumer, in every L1 image
BOOT_TIMEOUT_S = 400        # L1, and L2 under KVM (up in 10-60 s)
L2_TCG_BOOT_S = 1200        # L2 under TCG inside TCG: 95-330 s measured, slower on a busy day
# From L2's ready line (dropbear is started before it) to an SSH session: the key exchange
# runs in L2, and TCG inside TCG is slow at it.
L2_SSH_S = {"kvm": 120, "tcg": 300}
L2_KVM_HANG_S = 120         # a KVM L2 not up by then is hung (up in 15-60 s when it boots)


@dataclass
class DriveConfig:
    duration: float = 60.0        # seconds of driving, at most
    stall_window: float = 5.0     # pending and nothing moved for this long: STALL
    gap: float = 0.02             # seconds between a serviced byte and the next push
    sample_every: float = 1.0     # seconds between /proc/interrupts samples
    min_serviced: int = 10        # fewer by the end: too slow to judge (ERROR)
    pass_after: int = 0           # PASS once this many were serviced (and a stall window
                                  # has gone by); 0: drive for the whole duration


@dataclass
class ChainFacts:
    """What the chain found out about itself, for result.json."""

    l1_device: str = ""
    iommu_group: str = ""
    l1_qemu: str = ""             # L1's qemu-system-* (runs L2): its -version line
    l1_nointxmask: bool = False   # vfio_pci nointxmask in L1
    l1_disintx_writable: bool = False  # whether the command register's bit 10 sticks in L1
    l1_lspci: str = ""
    l2_accel: str = ""
    l2_accel_reason: str = ""
    l2_command: list[str] = field(default_factory=list)
    l2_kernel: str = ""
    l2_boot_failures: list[str] = field(default_factory=list)   # why L2 boots failed (restarted)
    consumer_device: str = ""     # the device as the consumer (L2, or L1 userspace) sees it
    consumer_tty: str = ""
    consumer_irq: str = ""
    l1_modules: str = ""
    l1_interrupts_at_end: str = ""
    l2_interrupts_at_end: str = ""


def _find_device_sh(vendor: str, device: str) -> str:
    return (f'for d in /sys/bus/pci/devices/*; do [ "$(cat $d/vendor)" = {vendor} ] && '
            f'[ "$(cat $d/device)" = {device} ] && dev=${{d##*/}}; done; '
            f'[ -n "$dev" ] || {{ echo "no {vendor}:{device} PCI device" >&2; exit 3; }}')


def l1_bind_script(profile: TargetProfile, nointxmask: bool) -> str:
    """Bind the device to vfio-pci in L1; prints key=value facts. Fails loudly."""
    l2 = profile.l2
    vfio_args = "nointxmask=1" if nointxmask else ""
    return f"""set -e
{_find_device_sh(*PCI_SERIAL)}
modprobe vfio-pci {vfio_args} || [ -d /sys/module/vfio_pci ]
modprobe {l2.iommu_module}
p=/sys/bus/pci/devices/$dev
if [ -e $p/driver ]; then echo $dev > $p/driver/unbind; fi
# Does the command register's INTx-disable bit (10) stick? (PCI 2.3 yes, 2.2 no) Write
# the high byte with bit 2 set, read back, restore. A zero byte comes from /dev/zero:
# busybox printf writes no byte for an octal zero, and a missed restore leaves INTx disabled.
cfgbyte() {{ od -An -tu1 -j5 -N1 $p/config | tr -d ' '; }}
setbyte() {{
    if [ "$1" -eq 0 ]; then head -c1 /dev/zero; else printf "\\\\$(printf %o "$1")"; fi |
        dd of=$p/config bs=1 seek=5 count=1 conv=notrunc 2>/dev/null
}}
hi=$(cfgbyte)
setbyte $((hi | 4))
hi2=$(cfgbyte)
setbyte $hi
[ "$(cfgbyte)" = "$hi" ] || {{ echo "could not restore the command register of $dev" >&2; exit 7; }}
disintx=no; [ $((hi2 & 4)) -ne 0 ] && disintx=yes
echo vfio-pci > $p/driver_override
echo $dev > /sys/bus/pci/drivers_probe
drv=$(basename "$(readlink $p/driver)")
[ "$drv" = vfio-pci ] || {{ echo "$dev bound to '$drv', not vfio-pci" >&2; exit 4; }}
group=$(basename "$(readlink $p/iommu_group)")
[ -e /dev/vfio/$group ] || {{ echo "/dev/vfio/$group missing" >&2; exit 5; }}
modprobe {' '.join(l2.kvm_module)} 2>/dev/null || true
kvm=no; [ -e /dev/kvm ] && kvm=yes
mask=$(cat /sys/module/vfio_pci/parameters/nointxmask)
[ "$mask" = Y ] || [ -z "{vfio_args}" ] || {{ echo "vfio_pci nointxmask is $mask, not Y" >&2; exit 6; }}
echo "dev=$dev group=$group kvm=$kvm nointxmask=$mask disintx_writable=$disintx"
"""


def l2_reader_script() -> str:
    """In L2: find the passed-through UART, open it raw, print one line per byte read."""
    return f"""{_find_device_sh(*PCI_SERIAL)}
p=/sys/bus/pci/devices/$dev
# Since 6.x the tty hangs below serial-base devices: $p/<ctrl>/<port>/tty/ttySN.
tty=$(ls -d $p/tty/* $p/*/*/tty/* 2>/dev/null | head -n1); tty=${{tty##*/}}
[ -n "$tty" ] || {{ echo "no tty for $dev (8250_pci did not bind): $(dmesg | grep -iE 'serial|8250|$dev' | tail -n3)" >&2; exit 4; }}
exec 3</dev/$tty
stty raw -echo <&3
echo "READER dev=$dev tty=$tty irq=$(cat $p/irq)"
while IFS= read -r -n1 c <&3; do echo R; done
"""


def compact_counters(snapshot: dict) -> dict:
    """The device model's counters worth a timeline: per sample, cumulative."""
    c = snapshot["counters"]
    return {k: c.get(k) for k in ("raised", "signalled", "resignalled", "unmasks", "serviced",
                                   "asserted_s", "intx_disable_writes")} | {"level": snapshot["level"]}


def parse_facts(line: str) -> dict[str, str]:
    return dict(f.split("=", 1) for f in line.split() if "=" in f)


class Chain:
    def __init__(self, profile: TargetProfile, l1: L1Guest, device, out: Path, progress: Progress,
                 l2_accel: str = "auto", consumer: str = "l2"):
        self.profile, self.l1, self.out, self.progress = profile, l1, out, progress
        self.device = device          # rig.devices: PciSerial or LegacyDevice
        self.l2_accel_request = l2_accel
        self.nointxmask = device.needs_nointxmask
        if consumer not in CONSUMERS:
            raise UserError(f"--consumer {consumer}: use one of {', '.join(CONSUMERS)}")
        self.consumer = consumer
        self.facts = ChainFacts()
        self.l2: L2Guest | None = None
        self.reader = None
        self.samples: list[Sample] = []
        self.times: dict[str, float] = {}
        ic = l1.config.ic or profile.interrupt_controllers[0]
        self.tracer = PathTracer(l1, ic, device, out)
        self.interrupt_path: dict = {}

    # -- set-up ---------------------------------------------------------------------
    def start(self, boot_timeout: float | None = None, l2_hang_s: float = L2_KVM_HANG_S) -> None:
        """L1 up, the device bound, the consumer reading. boot_timeout (per guest) overrides
        the defaults: BOOT_TIMEOUT_S, L2_TCG_BOOT_S for an L2 under TCG."""
        t0 = time.monotonic()
        self.l1.boot(timeout=boot_timeout or BOOT_TIMEOUT_S)
        self.device.connected()
        self.times["l1_ready_s"] = time.monotonic() - t0
        self._bind_in_l1()
        self.tracer.arm()
        if self.consumer == "userspace":
            # Fast mode: no L2; a userspace VFIO program in L1 services the interrupts.
            self._start_reader(self.l1.ssh, f"{CONSUMER} {self.facts.l1_device} {self.facts.iommu_group}",
                               "L1's userspace VFIO consumer")
            return
        tcg = self.facts.l2_accel == "tcg"
        self._start_l2(boot_timeout or (L2_TCG_BOOT_S if tcg else BOOT_TIMEOUT_S), l2_hang_s)
        self.times["l2_ready_s"] = time.monotonic() - t0
        self._start_reader(self.l2_ssh, l2_reader_script(), "L2's reader")

    def _bind_in_l1(self) -> None:
        self.progress.step("L1: binding the device to vfio-pci")
        r = self.l1.ssh.run(l1_bind_script(self.profile, self.nointxmask), timeout=60)
        if r.status != 0:
            raise InfraError(f"L1: binding the device to vfio-pci failed: {r.stderr.strip()[-300:]}")
        lines = r.stdout.strip().splitlines()
        if not lines:
            raise InfraError(f"L1: the bind script said nothing: {r.stderr.strip()[-300:]}")
        facts = parse_facts(lines[-1])
        self.facts.l1_device, self.facts.iommu_group = facts["dev"], facts["group"]
        self.facts.l1_nointxmask = facts["nointxmask"] == "Y"
        self.facts.l1_disintx_writable = facts["disintx_writable"] == "yes"
        self.facts.l1_lspci = self.l1.ssh.run(f"lspci -vv -s {facts['dev']}").stdout
        self.facts.l1_modules = self.l1.ssh.run("cut -d' ' -f1 /proc/modules | sort | tr '\\n' ' '").stdout
        self.facts.l1_qemu = self.l1.ssh.run(f"{self.profile.qemu_system} -version | head -n1").stdout.strip()
        note = f"device {facts['dev']} in IOMMU group {facts['group']}, nointxmask={facts['nointxmask']}"
        if self.consumer == "l2":
            self._choose_l2_accel(facts["kvm"] == "yes")
            note += f"; L2: {self.facts.l2_accel.upper()} ({self.facts.l2_accel_reason})"
        self.progress.note(note)

    def _choose_l2_accel(self, kvm: bool) -> None:
        req = self.l2_accel_request
        if req == "kvm" and not kvm:
            raise InfraError("--l2-accel kvm asked for, but L1 has no /dev/kvm after loading "
                             f"{self.profile.l2.kvm_module[0]}")
        use_kvm = kvm and req != "tcg"
        self.facts.l2_accel = "kvm" if use_kvm else "tcg"
        self.facts.l2_accel_reason = ("requested" if req != "auto" else
                                      "/dev/kvm works in L1" if kvm else "no /dev/kvm in L1")

    def l2_command(self) -> list[str]:
        l2, accel = self.profile.l2, self.facts.l2_accel
        cmdline = kernel_cmdline_l2(self.profile)
        accel_args = ["-accel", "kvm"] if accel == "kvm" else ["-accel", "tcg"]
        return [f"/usr/bin/{self.profile.qemu_system}", "-nodefaults", "-no-user-config",
                "-display", "none", "-no-reboot", "-M", l2.machine(accel), *accel_args,
                "-cpu", l2.cpu(accel), "-m", str(l2.memory_mb), "-smp", "1",
                "-kernel", "/l2/kernel", "-initrd", "/l2/initrd", "-append", cmdline,
                "-serial", "stdio",
                "-netdev", f"user,id=n0,hostfwd=tcp:127.0.0.1:{SSH_PORT}-:22",
                "-device", f"{self.profile.nic_model},netdev=n0,romfile=",
                "-device", f"vfio-pci,host={self.facts.l1_device},id=passthrough0",
                "-qmp", f"tcp:127.0.0.1:{QMP_PORT},server=on,wait=off",
                *l2.extra_args]

    def _start_l2(self, timeout: float, hang_s: float) -> None:
        """Start L2 and wait until it answers over SSH. L2 is started once more if its boot
        failed: it crashed (TCG inside TCG once oopsed in early boot, 1 of 85 runs), or,
        under KVM, it is not up after hang_s (it boots in 15-60 s; twice in 40 x86 runs its
        vCPU spun on jiffies_lock early in boot). The failure is diagnosed first and kept
        in result.json (chain.l2_boot_failures). The drive has not begun: no verdict is
        retried. A second failure, or a TCG L2 that hangs for the whole timeout, is ERROR."""
        cmd = self.l2_command()
        self.facts.l2_command = cmd
        log = self.out / "l2-console.log"
        kvm = self.facts.l2_accel == "kvm"
        limits = [min(timeout, hang_s) if kvm else timeout, timeout]
        for attempt, limit in enumerate(limits, 1):
            self.progress.step(f"L1: starting L2 ({self.facts.l2_accel.upper()})")
            self.l2 = L2Guest(self.l1, cmd, log, self.out)
            try:
                took = self.l2.start(limit)
                break
            except L2BootFailed as e:
                self.facts.l2_boot_failures.append(str(e))
                if attempt == len(limits) or (isinstance(e, L2BootHung) and not kvm):
                    raise
                self.progress.note(f"L2 did not come up; stopping it and starting it once more ({e})")
                self.l2.stop()
                failed = log.rename(self.out / "l2-console-failed.log")
                self.facts.l2_boot_failures[-1] += f" (its console: {failed.name})"
        self.facts.l2_kernel = self.l2.kernel_release
        self.times["l2_console_s"] = took
        self.progress.note(f"L2 console ready after {took:.1f} s")
        self.times["l2_ssh_s"] = self.l2.connect(timeout=L2_SSH_S[self.facts.l2_accel])
        self.progress.note(f"L2 SSH ready {self.times['l2_ssh_s']:.1f} s later")

    @property
    def l2_ssh(self) -> GuestSSH:
        """SSH into L2 (through L1), for checks against a running chain."""
        if self.l2 is None:
            raise InfraError("this chain has no L2 (--consumer userspace)")
        return self.l2.ssh

    def _start_reader(self, ssh: GuestSSH, command: str, what: str) -> None:
        """Start the program that services the device and prints a line per byte read."""
        chan = ssh.client.get_transport().open_session()
        chan.exec_command(command)
        self.reader = chan
        line = self._reader_line(30)
        if not line.startswith("READER"):
            chan.recv_exit_status()
            err = chan.recv_stderr(65536).decode(errors="replace") if chan.recv_stderr_ready() else ""
            raise InfraError(f"{what} did not start: {line or err.strip()}")
        facts = parse_facts(line)
        self.facts.consumer_device, self.facts.consumer_tty, self.facts.consumer_irq = facts["dev"], facts["tty"], facts["irq"]
        self.progress.note(f"{what} services {facts['dev']} ({facts['tty']}, IRQ {facts['irq']})")

    _reader_buf = b""

    def _reader_line(self, timeout: float) -> str:
        buf = b""
        deadline = time.monotonic() + timeout
        while b"\n" not in buf and time.monotonic() < deadline:
            ready, _, _ = select.select([self.reader], [], [], deadline - time.monotonic())
            if ready:
                data = self.reader.recv(4096)
                if not data:
                    break
                buf += data
        line, _, rest = buf.partition(b"\n")
        self._reader_buf = rest
        return line.decode(errors="replace").strip()

    # -- driving and observing ------------------------------------------------------
    def counts(self) -> tuple[int | None, int | None, str, str]:
        """(L1 vfio-intx count, L2 device IRQ count or None without L2, both tables)."""
        l1_text = self.l1.ssh.run("cat /proc/interrupts", timeout=30).stdout
        l1 = interrupts.find(interrupts.parse(l1_text), "vfio-intx")
        if self.consumer == "userspace":
            return (l1.count if l1 else None, None, l1_text, "")
        l2_text = self.l2_ssh.run("cat /proc/interrupts", timeout=30).stdout
        l2 = interrupts.find(interrupts.parse(l2_text), self.facts.consumer_irq)
        return (l1.count if l1 else None, l2.count if l2 else None, l1_text, l2_text)

    def drive(self, cfg: DriveConfig) -> Verdict:
        self.progress.step(f"driving interrupts for up to {cfg.duration:.0f} s "
                           f"(STALL after {cfg.stall_window:.0f} s without progress)")
        self._settle_previous_drive(cfg.stall_window)
        self.samples = []
        t0 = self.tracer.begin()
        sent = serviced = 0
        next_send = next_sample = t0
        verdict = None
        while (now := time.monotonic()) - t0 < cfg.duration:
            if sent == serviced and now >= next_send:
                self.tracer.mark("push")
                self.device.push()
                sent += 1
            if now >= next_sample:
                verdict = self._sample(now - t0, sent, serviced, cfg)
                next_sample = now + cfg.sample_every
                if verdict:
                    break
                if cfg.pass_after and serviced >= cfg.pass_after and now - t0 >= cfg.stall_window:
                    verdict = final(self.samples, cfg.stall_window, cfg.min_serviced)
                    break
            wait = max(0.0, min(next_sample, next_send if sent == serviced else next_sample)
                       - time.monotonic())
            got = self._read_serviced(wait)
            if got:
                self.tracer.mark("serviced", got)
                serviced += got
                next_send = time.monotonic() + cfg.gap
        if verdict is None:
            self._sample(time.monotonic() - t0, sent, serviced, cfg)
            verdict = final(self.samples, cfg.stall_window, cfg.min_serviced)
        self._unserviced = sent - serviced
        self.interrupt_path = self.tracer.collect(self.samples, verdict)
        self._record_final_tables()
        return verdict

    def _sample(self, t: float, sent: int, serviced: int, cfg: DriveConfig) -> Verdict | None:
        self.l1.machine.check_running()
        if self.l2:
            self.l2.check_alive()
        l1, l2, _, _ = self.counts()
        dev = self.device.counters()
        self.samples.append(Sample(round(t, 3), sent, serviced, l1, l2,
                                   device=compact_counters(dev) if dev else None))
        if len(self.samples) % 5 == 1:
            self.progress.note(f"t={t:5.1f}s pushed={sent} serviced={serviced} "
                               f"L1 vfio-intx={l1} L2 irq={l2}")
        return judge(self.samples, cfg.stall_window, cfg.min_serviced)

    _unserviced = 0     # bytes the last drive pushed that were not read when it ended

    def _settle_previous_drive(self, timeout: float) -> None:
        """A second drive on the same chain (the rig_chain fixture) must not count the
        previous drive's last byte, read after that drive ended, as its own: wait for it.
        One that never comes (a stalled device) is discarded when it is read."""
        deadline = time.monotonic() + timeout
        while self._unserviced > 0 and (left := deadline - time.monotonic()) > 0:
            self._read_serviced(left)

    def _read_serviced(self, wait: float) -> int:
        """Lines the consumer printed (one per byte read) within `wait` seconds, less the
        previous drive's stragglers."""
        ready, _, _ = select.select([self.reader], [], [], wait)
        if not ready:
            return 0
        data = self.reader.recv(65536)
        if not data:
            raise InfraError("the consumer's reader (L2's, or the userspace program in L1) exited")
        self._reader_buf += data
        n = self._reader_buf.count(b"\n")
        self._reader_buf = self._reader_buf.rsplit(b"\n", 1)[-1]
        stale = min(n, self._unserviced)
        self._unserviced -= stale
        return n - stale

    def _record_final_tables(self) -> None:
        try:
            _, _, l1_text, l2_text = self.counts()
            self.facts.l1_interrupts_at_end, self.facts.l2_interrupts_at_end = l1_text, l2_text
        except InfraError:
            pass

    # -- teardown -------------------------------------------------------------------
    def close(self) -> None:
        if self.reader:
            self.reader.close()
        if self.l2:
            self.l2.close()
        # The device itself is closed by its owner after L1 is down: a vfio-user server
        # going away under a running L0 QEMU makes its shutdown fail.


def kernel_cmdline_l2(profile: TargetProfile) -> str:
    l2 = profile.l2
    return " ".join([f"console={l2.console}", "panic=-1", "loglevel=4", *l2.cmdline])


__all__ = ["Chain", "DriveConfig", "GuestConfig", "kernel_cmdline", "L1Guest"]

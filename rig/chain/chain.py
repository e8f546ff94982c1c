"""The nested chain: L0 runs L1 with the device under test; L1 binds it to vfio-pci and
runs L2 with it passed through (or, in fast mode, a userspace VFIO program services it);
the rig drives interrupts and counts at every layer (rig.chain.drive).

This module puts the parts together: L1 (rig.guests.l1), the bind (rig.chain.bind), the
interrupt-path tracer (rig.chain.tracer), the consumer (L2 from rig.guests.l2, or the
program in L1) and its reader (rig.chain.reader).
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

from rig.chain import gcov
from rig.chain.bind import Bound, bind_in_l1, load_modules_in_l1
from rig.chain.chain_snapshot import ChainSnapshots
from rig.chain.device import Device, wait_on_bus
from rig.chain.drive import Drive
from rig.chain.facts import ChainFacts, RunFacts
from rig.chain.l2_accel import choose_l2_accel
from rig.chain.reader import ConsumerReader, consumer_command, open_reader
from rig.chain.reboot import ContinuedMarks, RebootDrive
from rig.chain.restore_helper import RestoreHelper
from rig.chain.scenario import ScenarioDrive, scenario_final
from rig.chain.stages import (
    Binding,
    ChainStages,
    InterruptTables,
    L1Started,
    L2Plan,
    L2Started,
    chain_facts,
)
from rig.chain.tracer import PathTracer
from rig.chain.verdict import Sample, Verdict, stall_stands, unless_paused
from rig.core import timeouts
from rig.core.errors import InfraError
from rig.core.kinds import Accelerator, Consumer, GuestStart, Scenario
from rig.core.progress import Progress
from rig.core.shell import guest_script
from rig.core.spec import DriveSpec
from rig.core.targets import KvmModule, MachineProfile, TargetProfile
from rig.guests.l1 import L1Guest
from rig.guests.l2 import L2Guest, boot_l2, l2_command, passthrough_spec
from rig.guests.ssh import GuestSSH
from rig.host.virt import kvm_module_for
from rig.trace import proc_interrupts as interrupts
from rig.trace.path import InterruptPath

log = logging.getLogger(__name__)


class Chain(ChainSnapshots):
    """L1 (and L2) with the device, its consumer and tracer: started (booted, or restored with
    ChainSnapshots), driven, torn down."""

    def __init__(self, profile: TargetProfile, machine: MachineProfile, l1: L1Guest, device: Device, out: Path,
                 progress: Progress, l2_accel: str = "auto", consumer: str = Consumer.L2,
                 restore_helper: Path | None = None, run_facts: RunFacts | None = None,
                 scenario: str = Scenario.FLOW, coverage: bool = False):
        consumer = Consumer(consumer)     # rig.core.spec validated it
        self.scenario = Scenario(scenario)
        self.coverage = coverage          # L1's gcov counters zeroed before the consumer (rig.chain.gcov)
        self.profile, self.machine, self.l1, self.out, self.progress = profile, machine, l1, out, progress
        self.device = device
        # What the stages before the chain returned (L0, image, device), for result.json.
        self.run_facts = run_facts
        self.l2_accel_request = l2_accel
        # The machine's L1 helper module built for L1's kernel (rig.core.targets'
        # nested_kvm_restore_helper), loaded in L1 after a chain restore; None: none here.
        self.restore_helper = RestoreHelper(machine, restore_helper)
        self.nointxmask = device.needs_nointxmask
        self.consumer = consumer
        self.stages = ChainStages()   # each stage's result, recorded as it returns
        self.l2: L2Guest | None = None
        self.reader: ConsumerReader | None = None
        self.samples: list[Sample] = []
        self.drive_spec: DriveSpec | None = None     # the drive as run: its stall window settled
        self._asked_limits: tuple[float | None, float] = (None, timeouts.L2_KVM_HANG_S)   # start()'s
        self._cpu_kvm: tuple[KvmModule | None] | None = None      # _kvm_module()'s answer, once read
        self.times: dict[str, float] = {}
        ic = l1.config.ic or machine.interrupt_controllers[0]
        self.tracer = PathTracer(l1, machine.trace_of(ic), device, out)
        self.interrupt_path: InterruptPath | None = None

    # -- set-up ---------------------------------------------------------------------
    def start(self, boot_timeout: float | None = None, l2_hang_s: float = timeouts.L2_KVM_HANG_S) -> None:
        """L1 up, the device bound, the consumer reading. boot_timeout (per guest) overrides
        the defaults (rig.core.timeouts: BOOT_S, L2_TCG_BOOT_S for an L2 under TCG)."""
        t0 = time.monotonic()
        self._asked_limits = (boot_timeout, l2_hang_s)
        late = self._device_joins_late()
        if self._restore_chain(t0):
            if late:
                self._pass_device_on()
            else:
                self.tracer.arm()
            self._start_consumer()
            return
        booted = self.l1.boot(timeout=boot_timeout or timeouts.BOOT_S)
        if not late:
            self._attach_device()
        self.times["l1_ready_s"] = time.monotonic() - t0
        how = GuestStart.RESTORED if booted.restored else GuestStart.BOOTED
        self.stages = replace(self.stages, l1=L1Started(how, booted.snapshot))
        if booted.snapshot_s:
            self.times["l1_restore_s" if booted.restored else "l1_snapshot_save_s"] = round(booted.snapshot_s, 2)
        kvm = self._load_modules() if late else self._bind_in_l1()
        if self.consumer == Consumer.USERSPACE:
            self._save_chain()           # L1 with the device bound: the next run skips the bind
            self.tracer.arm()
            self._start_consumer()
            return
        if not late:
            self.tracer.arm()
        plan = self._plan_l2(*kvm)
        self._start_l2(plan, *self._l2_limits(plan.accel))
        self.times["l2_ready_s"] = time.monotonic() - t0
        self._save_chain()
        if late:
            self._pass_device_on()
        self._start_consumer()

    def _start_consumer(self) -> None:
        if self.coverage:
            gcov.reset(self.l1.ssh)
        if self.consumer == Consumer.USERSPACE:
            # Fast mode: no L2; a userspace VFIO program in L1 services the interrupts.
            bound = self._bound()
            self._start_reader(self.l1.ssh, consumer_command(bound.device, bound.group, self.scenario,
                                                             bound.non_2_3), "L1's userspace VFIO consumer")
        else:
            self._start_l2_reader()

    def _start_l2_reader(self) -> None:
        self._start_reader(self.l2_ssh, guest_script("rig.chain", "l2_reader.sh", *self.device.pci_id,
                                                        self.profile.l2.console), "L2's reader")

    @property
    def facts(self) -> ChainFacts:
        """result.json's `chain`: what the stages found out so far."""
        return chain_facts(self.stages, self.consumer == Consumer.L2)

    def _binding(self) -> Binding:
        if self.stages.binding is None:
            raise InfraError("the device is not bound in L1")
        return self.stages.binding

    def _bound(self) -> Bound:
        return self._binding().bound

    def _l2_accel(self) -> str:
        return self.stages.l2_plan.accel if self.stages.l2_plan else ""

    def _attach_device(self) -> None:
        """The device in L1 (its QEMU connected; a hotplugged one added now)."""
        took = self.device.attach(self.l1)
        if self.device.hotplugged:
            self.times["device_hotplug_s"] = round(took, 2)
            self.progress.note(f"device {self.device.name} hotplugged into L1, on its bus after {took:.1f} s")

    def _kvm_module(self) -> KvmModule | None:
        """The KVM module L1's CPU can use, read from its cpuinfo once (a late device's chain
        asks before it loads the modules and again when it binds)."""
        if self._cpu_kvm is None:
            self._cpu_kvm = (kvm_module_for(self.profile.l2.kvm_modules, self.l1.ssh.run("cat /proc/cpuinfo").stdout),)
        return self._cpu_kvm[0]

    def _load_modules(self) -> tuple[bool, str]:
        """What the bind loads, without the device (it joins once L2 runs); (whether L1 has
        /dev/kvm, the KVM module)."""
        self.progress.step("L1: loading vfio's modules (the device joins once L2 runs)")
        kvm = self._kvm_module()
        return load_modules_in_l1(self.l1.ssh, self.profile, self.nointxmask, kvm), str(kvm) if kvm else ""

    def _bind_in_l1(self) -> tuple[bool, str]:
        """Bind, record what L1 says about the device; (whether L1 has /dev/kvm, the KVM module)."""
        self.progress.step("L1: binding the device to vfio-pci")
        ssh = self.l1.ssh
        kvm = self._kvm_module()
        bound = bind_in_l1(ssh, self.profile, self.device.pci_id, self.nointxmask, kvm)
        self.stages = replace(self.stages, binding=Binding(
            bound, kvm_module=str(kvm) if kvm else "", lspci=ssh.run(f"lspci -vv -s {bound.device}").stdout,
            modules=ssh.run("cut -d' ' -f1 /proc/modules | sort | tr '\\n' ' '").stdout,
            l1_qemu=ssh.run(f"{self.profile.qemu_system} -version | head -n1").stdout.strip()))
        self.progress.note(f"device {bound.device} in IOMMU group {bound.group}, "
                           f"nointxmask={'Y' if bound.nointxmask else 'N'}")
        return bound.kvm, str(kvm) if kvm else ""

    def _pass_device_on(self) -> None:
        """A device that joins late (ChainSnapshots._device_joins_late): into L1, bound,
        then into the running L2 by L1's QEMU, waited for until L2's driver has it."""
        assert self.l2 is not None
        self._attach_device()
        self._bind_in_l1()
        self.tracer.arm()     # before L2's driver probes it: that probe's interrupt may be the only one
        t = time.monotonic()
        try:
            self.l2.add_device(passthrough_spec(self.profile, self._bound().device))
            wait_on_bus(self.l2.ssh, self.device.pci_id, "L2: the passed-through device")
        except InfraError as e:
            self._l2_again_with_the_device(f"{e}; {self.l2.diagnosis()}")
            return
        self.times["l2_device_add_s"] = took = round(time.monotonic() - t, 2)
        self.progress.note(f"device {self._bound().device} passed on into the running L2, "
                           f"its driver's after {took:.1f} s")

    def _l2_again_with_the_device(self, why: str) -> None:
        """L2 did not take the device (once in about 115 restored runs, in a matrix two at a
        time, L2 stopped answering SSH after the hotplug): the drive has not begun, so, as
        for an L2 that fails its boot (rig.guests.l2.boot_l2), it is diagnosed, stopped, its
        console kept, and L2 booted again with the device on its command line."""
        assert self.l2 is not None and self.stages.l2_plan is not None
        self.progress.note(f"L2 did not take the device; starting L2 again with it in place ({why})")
        self.l2.stop()
        self.l2 = None
        console = self.out / "l2-console.log"
        if console.exists():
            why += f" (its console: {console.rename(self.out / 'l2-console-device-failed.log').name})"
        failed = (*self.stages.l2_boot_failures, why)
        plan = self.stages.l2_plan
        plan = replace(plan, command=tuple(l2_command(self.profile, plan.accel, self._bound().device)))
        self.stages = replace(self.stages, l2_plan=plan)
        self._start_l2(plan, *self._l2_limits(plan.accel), earlier_failures=failed)

    def _l2_limits(self, accel: str) -> tuple[float, float]:
        """L2's boot timeout and KVM hang limit: start()'s, else the defaults for accel."""
        boot_timeout, hang_s = self._asked_limits
        tcg = accel == Accelerator.TCG
        return boot_timeout or (timeouts.L2_TCG_BOOT_S if tcg else timeouts.BOOT_S), hang_s

    def _plan_l2(self, kvm: bool, kvm_module: str) -> L2Plan:
        choice = choose_l2_accel(self.l2_accel_request, kvm, kvm_module)
        self.progress.note(f"L2: {choice.accel.upper()} ({choice.reason})")
        device = None if self._device_joins_late() else self._bound().device
        plan = L2Plan(choice.accel, choice.reason, tuple(l2_command(self.profile, choice.accel, device)))
        self.stages = replace(self.stages, l2_plan=plan)
        return plan

    def _start_l2(self, plan: L2Plan, timeout: float, hang_s: float, earlier_failures: tuple[str, ...] = ()) -> None:
        failures = list(earlier_failures)    # boot_l2 adds why each failed start failed
        try:
            self.l2, took = boot_l2(self.l1, list(plan.command), self.out, self.progress,
                                    plan.accel == Accelerator.KVM, timeout, hang_s, failures)
        finally:
            self.stages = replace(self.stages, l2_boot_failures=tuple(failures))
        self.stages = replace(self.stages, l2=L2Started(GuestStart.BOOTED, self.l2.kernel_release))
        self.times["l2_console_s"] = took
        self.progress.note(f"L2 console ready after {took:.1f} s")
        self.times["l2_ssh_s"] = self.l2.connect(timeout=timeouts.L2_SSH_S[plan.accel])
        self.progress.note(f"L2 SSH ready {self.times['l2_ssh_s']:.1f} s later")

    @property
    def l2_ssh(self) -> GuestSSH:
        """SSH into L2 (through L1), for checks against a running chain."""
        if self.l2 is None:
            raise InfraError("this chain has no L2 (--consumer userspace)")
        return self.l2.ssh

    def _start_reader(self, ssh: GuestSSH, command: str, what: str) -> None:
        """Start the program that services the device and prints a line per byte read."""
        self.reader, started = open_reader(ssh, command, what)
        self.stages = replace(self.stages, consumer=started)
        self.progress.note(f"{what} services {started.device} ({started.tty}, IRQ {started.irq})")

    # -- driving and observing ------------------------------------------------------
    def tables(self) -> tuple[str, str]:
        """L1's /proc/interrupts, and L2's (empty without L2)."""
        l1_text = self.l1.ssh.run("cat /proc/interrupts", timeout=timeouts.SSH_QUICK_S).stdout
        if self.consumer == Consumer.USERSPACE:
            return l1_text, ""
        return l1_text, self.l2_ssh.run("cat /proc/interrupts", timeout=timeouts.SSH_QUICK_S).stdout

    def counts(self) -> tuple[int | None, int | None]:
        """(L1's vfio-intx count, L2's count for the device or None without L2)."""
        l1_text, l2_text = self.tables()
        line = interrupts.find(interrupts.parse(l1_text), "vfio-intx")
        # The descriptor counts on from what L1's boot driver took (PowerNV's virtio driver
        # takes a few): the rig counts vfio's own.
        binding = self.stages.binding
        l1 = line.count - ((binding.bound.irq_count if binding else None) or 0) if line else None
        if self.consumer == Consumer.USERSPACE:
            return (l1, None)
        l2 = interrupts.find(interrupts.parse(l2_text), self.stages.consumer.irq if self.stages.consumer else "")
        return (l1, l2.count if l2 else None)

    def _live_counts(self) -> tuple[int | None, int | None]:
        """Counts, after checking that every layer still runs (a dead one is an ERROR)."""
        self.l1.machine.check_running()
        if self.l2:
            self.l2.check_alive()
        return self.counts()

    def drive(self, asked: DriveSpec) -> Verdict:
        """The scenario driven and judged, with the stall window settled for how L2 runs
        (kept in drive_spec for the result)."""
        if self.reader is None:
            raise InfraError("the chain was not started: no consumer to drive")
        self.drive_spec = cfg = asked.settled(self._l2_accel())
        flow = self.scenario in (Scenario.FLOW, Scenario.L2_REBOOT)
        d = self._drive_of(cfg, self.reader)
        try:
            verdict = d.run()
        except InfraError as e:
            raise InfraError(f"{e}; {self._guests_state()}") from e
        self.samples = d.samples
        self.interrupt_path = self.tracer.collect(self.samples, verdict)
        # A STALL needs every guest running; the flow's is also checked against a push into
        # XIVE's model gap, which is what masked-pending tests on purpose.
        verdict = stall_stands(verdict, self.run_states, self.interrupt_path) if flow else \
            scenario_final(unless_paused(verdict, self.run_states()), self.interrupt_path)
        self._record_final_tables()
        return verdict

    def _drive_of(self, cfg: DriveSpec, reader: ConsumerReader) -> Drive | RebootDrive | ScenarioDrive:
        """The scenario's drive: the flow's loop, the flow around L2's reboot, or the steps the
        consumer takes."""
        if self.scenario == Scenario.FLOW:
            return self._flow_drive(cfg)
        if self.scenario == Scenario.L2_REBOOT:
            return RebootDrive(cfg, self._flow_drive, self._reboot_l2, self.progress)
        return ScenarioDrive(self.scenario, reader, self.device, self._live_counts, self.tracer, self.progress)

    def _flow_drive(self, cfg: DriveSpec, continued: bool = False) -> Drive:
        assert self.reader is not None         # drive() checked; a reboot started it again
        marks = ContinuedMarks(self.tracer) if continued else self.tracer
        return Drive(cfg, self.device, self.reader, self._live_counts, marks, self.progress)

    def _reboot_l2(self) -> float:
        """L2 reset and back, its reader started again (the l2-reboot scenario)."""
        assert self.l2 is not None and self.reader is not None
        self.reader.close()
        took = self.l2.reboot(timeouts.BOOT_S, timeouts.L2_SSH_S.get(self._l2_accel(), timeouts.L2_SSH_S["tcg"]))
        self._start_l2_reader()
        return took

    def run_states(self) -> dict[str, str]:
        """Each QEMU's run state, by the guest it runs."""
        states = {"L1 (L0's QEMU)": self.l1.machine.run_state()}
        if self.l2 is not None:
            states["L2 (L1's QEMU)"] = self.l2.run_state()
        return states

    def _guests_state(self) -> str:
        """Whether the guests still run, for a drive that failed (its reader gone, say)."""
        try:
            if self.l2 is not None:
                self.l2.check_alive()
            else:
                self.l1.machine.check_running()
        except InfraError as gone:
            return str(gone)
        return "L1 and L2 still run" if self.l2 is not None else "L1 still runs"

    def _record_final_tables(self) -> None:
        try:
            self.stages = replace(self.stages, tables=InterruptTables(*self.tables()))
        except InfraError as e:
            log.warning("final /proc/interrupts not read: %s", e)

    # -- teardown -------------------------------------------------------------------
    def close(self) -> None:
        if self.reader:
            self.reader.close()
        if self.l2:
            self.l2.close()
        # The device itself is closed by its owner after L1 is down: a vfio-user server
        # going away under a running L0 QEMU makes its shutdown fail.

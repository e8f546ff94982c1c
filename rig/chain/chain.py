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
from rig.chain.bind import Bound, bind_in_l1
from rig.chain.device import Device
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
    SavedChain,
    chain_facts,
)
from rig.chain.tracer import PathTracer
from rig.chain.verdict import Sample, Verdict, stall_stands, unless_paused
from rig.core import timeouts
from rig.core.cache import content_key
from rig.core.errors import InfraError
from rig.core.kinds import Accelerator, Consumer, GuestStart, Scenario
from rig.core.progress import Progress
from rig.core.shell import guest_script
from rig.core.spec import DriveSpec
from rig.core.targets import MachineProfile, TargetProfile
from rig.guests.l1 import L1Guest
from rig.guests.l2 import L2Guest, boot_l2, l2_command
from rig.guests.snapshot import BadSnapshot, SnapshotStore
from rig.guests.ssh import GuestSSH
from rig.host.virt import kvm_module_for
from rig.trace import proc_interrupts as interrupts
from rig.trace.path import InterruptPath

log = logging.getLogger(__name__)

CHAIN_SH = Path(__file__).parent / "sh"
# How a chain snapshot is taken, part of its key: one taken otherwise is never restored.
SAVED_WITH = "L2 stopped (QMP stop) while L1 is saved"


class Chain:
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
        self.times: dict[str, float] = {}
        ic = l1.config.ic or machine.interrupt_controllers[0]
        self.tracer = PathTracer(l1, machine.trace_of(ic), device, out)
        self.interrupt_path: InterruptPath | None = None

    # -- set-up ---------------------------------------------------------------------
    def start(self, boot_timeout: float | None = None, l2_hang_s: float = timeouts.L2_KVM_HANG_S) -> None:
        """L1 up, the device bound, the consumer reading. boot_timeout (per guest) overrides
        the defaults (rig.core.timeouts: BOOT_S, L2_TCG_BOOT_S for an L2 under TCG)."""
        t0 = time.monotonic()
        if self._restore_chain(t0):
            self.tracer.arm()
            self._start_consumer()
            return
        booted = self.l1.boot(timeout=boot_timeout or timeouts.BOOT_S)
        self._attach_device()
        self.times["l1_ready_s"] = time.monotonic() - t0
        how = GuestStart.RESTORED if booted.restored else GuestStart.BOOTED
        self.stages = replace(self.stages, l1=L1Started(how, booted.snapshot))
        if booted.snapshot_s:
            self.times["l1_restore_s" if booted.restored else "l1_snapshot_save_s"] = round(booted.snapshot_s, 2)
        kvm = self._bind_in_l1()
        if self.consumer == Consumer.USERSPACE:
            self._save_chain()           # L1 with the device bound: the next run skips the bind
            self.tracer.arm()
            self._start_consumer()
            return
        self.tracer.arm()
        plan = self._plan_l2(kvm)
        tcg = plan.accel == Accelerator.TCG
        self._start_l2(plan, boot_timeout or (timeouts.L2_TCG_BOOT_S if tcg else timeouts.BOOT_S), l2_hang_s)
        self.times["l2_ready_s"] = time.monotonic() - t0
        self._save_chain()
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

    # -- the whole chain from a snapshot (L1 with the device bound, and L2 booted in it) ---
    def _chain_held(self) -> str:
        """What a chain snapshot of this consumer holds, for progress lines."""
        return "L1-with-L2" if self.consumer == Consumer.L2 else "L1-with-the-device-bound"

    def chain_key(self) -> str:
        """What shapes L1 with the device bound (and L2 booted in it), beyond L1 itself:
        how the device is bound, how L2 is chosen and started."""
        return content_key("chain", SAVED_WITH, self.l1.snapshot_key(), self.consumer, self.l2_accel_request,
                           self.nointxmask, (CHAIN_SH / "bind.sh").read_text(),
                           *(l2_command(self.profile, a, "DEV") for a in (Accelerator.KVM, Accelerator.TCG)))

    def _save_chain(self) -> None:
        """Once the device is bound and L2 (if any) up, nothing driven yet: L1 saved as it
        is, for later runs of the same chain (rig.guests.snapshot); what the bind found
        recorded beside, and what the machine's restore helper will need."""
        store = self.l1.config.snapshots
        if store is None or not self.device.migratable:     # the device would be in it
            return
        problem = self.restore_helper.problem(self._l2_accel())
        if problem:
            log.info("%s not saved: %s", self._chain_held(), problem)
            return
        key = self.chain_key()
        if (self.consumer == Consumer.L2 and self.l2 is None) or store.lookup(key):
            return
        extra = SavedChain(self.facts, self.l2.kernel_release if self.l2 else "",
                           self.restore_helper.address(self.l1.ssh, self._l2_accel())).to_meta()
        if self.l2:
            self.l2.pause()
            self.l2.release_monitor()
        try:
            saved = store.save(self.l1.machine, key, extra)
        finally:
            if self.l2:
                self.l2.resume()
        if saved is not None:
            self.stages = replace(self.stages, chain_snapshot=key)
            self.times["chain_snapshot_save_s"] = round(saved, 2)
            self.progress.note(f"{self._chain_held()} saved as a snapshot in {saved:.1f} s")

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

    def _saved_chain(self, store: SnapshotStore, key: str, stream: Path) -> SavedChain | None:
        """What was recorded beside this chain's snapshot; None (the entry removed if it
        can never be restored) when there is nothing to restore."""
        try:
            saved = SavedChain.from_meta(store.meta(key))
            problem = self.restore_helper.problem(saved.facts.l2_accel) if saved else None
        except BadSnapshot as e:
            saved, problem = None, str(e)
        if problem:       # saved before the machine was known not to carry it back, or not the rig's record
            self.progress.note(f"{self._chain_held()} snapshot removed: {problem}")
            store.discard(stream.parent)
            return None
        return saved

    def _restore_chain(self, t0: float) -> bool:
        """L1 restored with the device bound (and L2 running in it), when a snapshot of
        this chain exists; False (any broken snapshot removed) to build it instead."""
        store = self.l1.config.snapshots
        if store is None or not self.device.migratable:
            return False
        key = self.chain_key()
        stream = store.lookup(key)
        saved = self._saved_chain(store, key, stream) if stream else None
        if stream is None or saved is None:
            return False
        held = self._chain_held()
        self.progress.step(f"restoring {held} from a snapshot")
        if not self.l1.restore_from(store, stream, held):
            return False
        try:
            helper = self.restore_helper.run(self.l1.ssh, saved.facts.l2_accel, saved.restore_helper_address)
            if helper:
                self.times["l1_restore_helper_s"] = helper.seconds
                self.progress.note(f"L1: {helper.module} loaded and unloaded ({helper.line})")
            self._take_saved_facts(saved, t0, helper.line if helper else "")
            if self.consumer == Consumer.L2:
                self._attach_l2(saved, t0)
        except InfraError as e:
            why = str(e)
            if self.l2:
                why += f"; {self.l2.diagnosis()}"
                self.l2.close()
                self.l2 = None
                kept = self.out / "l2-console-restore-failed.log"
                (self.out / "l2-console.log").replace(kept)
                why += f" (L2's console: {kept.name})"
            self.l1.drop_snapshot(store, stream, why, held, proven=isinstance(e, BadSnapshot))
            self.stages = ChainStages()
            return False
        store.restored(stream.parent)
        self.stages = replace(self.stages, chain_snapshot=key)
        return True

    def _take_saved_facts(self, saved: SavedChain, t0: float, helper_line: str) -> None:
        """What the bind found (and how L2 is run), from beside the snapshot."""
        self._attach_device()
        self.times["l1_ready_s"] = time.monotonic() - t0
        self.times["l1_restore_s"] = round(self.l1.times.snapshot_s, 2)
        was = saved.facts
        self.stages = replace(self.stages, l1=L1Started(GuestStart.RESTORED, self.l1.times.snapshot, helper_line),
                              binding=Binding.of_saved(was), l2_plan=L2Plan.of_saved(was))
        if self.consumer == Consumer.USERSPACE:
            self.progress.note(f"device {was.l1_device} bound as before")

    def _attach_l2(self, saved: SavedChain, t0: float) -> None:
        plan = self.stages.l2_plan
        if plan is None:
            raise BadSnapshot("the chain snapshot does not say how L2 runs")
        self.l2 = L2Guest(self.l1, list(plan.command), self.out / "l2-console.log", self.out)
        self.l2.attach(saved.l2_kernel)
        self.l2.resume()
        self.times["l2_ssh_s"] = self.l2.connect(timeout=timeouts.L2_SSH_S[plan.accel])
        # L2's clock stopped with L1's: set it too. Its console says where it came from.
        now = time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())
        self.l2.ssh.run(f"date -u -s '{now}' >/dev/null; echo 'rig: L2 restored with L1' >/dev/console",
                        timeout=timeouts.SSH_QUICK_S)
        self.times["l2_ready_s"] = time.monotonic() - t0
        self.stages = replace(self.stages, l2=L2Started(GuestStart.RESTORED, self.l2.kernel_release))
        self.progress.note(f"L2 ({plan.accel.upper()}) running again, SSH after "
                           f"{self.times['l2_ssh_s']:.1f} s; device {self._bound().device} bound as before")

    def _attach_device(self) -> None:
        """The device in L1 (its QEMU connected; a hotplugged one added now)."""
        took = self.device.attach(self.l1)
        if self.device.hotplugged:
            self.times["device_hotplug_s"] = round(took, 2)
            self.progress.note(f"device {self.device.name} hotplugged into L1, on its bus after {took:.1f} s")

    def _bind_in_l1(self) -> bool:
        """Bind, record what L1 says about the device; whether L1 has /dev/kvm."""
        self.progress.step("L1: binding the device to vfio-pci")
        ssh = self.l1.ssh
        kvm = kvm_module_for(self.profile.l2.kvm_modules, ssh.run("cat /proc/cpuinfo").stdout)
        bound = bind_in_l1(ssh, self.profile, self.device.pci_id, self.nointxmask, kvm)
        self.stages = replace(self.stages, binding=Binding(
            bound, kvm_module=str(kvm) if kvm else "", lspci=ssh.run(f"lspci -vv -s {bound.device}").stdout,
            modules=ssh.run("cut -d' ' -f1 /proc/modules | sort | tr '\\n' ' '").stdout,
            l1_qemu=ssh.run(f"{self.profile.qemu_system} -version | head -n1").stdout.strip()))
        self.progress.note(f"device {bound.device} in IOMMU group {bound.group}, "
                           f"nointxmask={'Y' if bound.nointxmask else 'N'}")
        return bound.kvm

    def _plan_l2(self, kvm: bool) -> L2Plan:
        choice = choose_l2_accel(self.l2_accel_request, kvm, self._binding().kvm_module)
        self.progress.note(f"L2: {choice.accel.upper()} ({choice.reason})")
        plan = L2Plan(choice.accel, choice.reason, tuple(l2_command(self.profile, choice.accel, self._bound().device)))
        self.stages = replace(self.stages, l2_plan=plan)
        return plan

    def _start_l2(self, plan: L2Plan, timeout: float, hang_s: float) -> None:
        failures: list[str] = []       # boot_l2 says why each failed start failed
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

    def drive(self, cfg: DriveSpec) -> Verdict:
        if self.reader is None:
            raise InfraError("the chain was not started: no consumer to drive")
        flow = self.scenario in (Scenario.FLOW, Scenario.L2_REBOOT)
        d: Drive | RebootDrive | ScenarioDrive = \
            RebootDrive(cfg, self._flow_drive, self._reboot_l2, self.progress) if self.scenario == Scenario.L2_REBOOT \
            else self._flow_drive(cfg) if flow else \
            ScenarioDrive(self.scenario, self.reader, self.device, self._live_counts, self.tracer, self.progress)
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

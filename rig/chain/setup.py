"""From a validated RunSpec to a running chain: the L0 QEMU, the L1 image (Debian's
kernel with vfio as shipped or rebuilt unfixed, or the user's kernel), the device, L1,
the bind, the consumer. Torn down on exit however it ends."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

from guest_images.build import GuestImage, KernelSource
from guest_images.l1_helper import L1Helper
from rig.chain import gcov
from rig.chain.chain import Chain
from rig.chain.device import Device, make_device
from rig.chain.device_probe import vfio_user_usable
from rig.chain.facts import KernelInputFacts, L1Facts, RunFacts
from rig.chain.launch import L0, start_l0
from rig.chain.session import Session
from rig.core import timeouts
from rig.core.errors import InfraError, UserError
from rig.core.kinds import AccelChoice, Consumer, DeviceKind, Scenario
from rig.core.spec import RunSpec, scenario_problem
from rig.core.targets import MachineProfile
from rig.guests.l1 import GuestConfig
from rig.guests.snapshot import SnapshotStore
from rig.host.qemu import QemuBinary
from rig.host.rundir import RunDir
from rig.kernel.under_test import KernelUnderTest


@dataclass(frozen=True)
class L1Image:
    """The image stage's result: L1's image (Debian's kernel, or the user's)."""

    image: GuestImage

    @property
    def fix(self) -> bool | None:
        """Whether L1's vfio-pci has the INTx fix, read from the binary (None: unreadable)."""
        fix: bool | None = self.image.meta["vfio_intx_fix"]
        return fix

    def describe_fix(self) -> str:
        where = f"L1 {self.image.meta.get('vfio_intx_fix_from') or 'vfio-pci-core.ko'}"
        return describe_fix(self.fix, where)

    def facts(self, vfio_modules: str) -> L1Facts:
        meta = self.image.meta
        return L1Facts(self.image.kernel_version, meta["kernel_package"], vfio_modules, meta["vfio_rebuilt"],
                       self.fix, self.image.kernel.parent.name)


def l1_image(s: Session, spec: RunSpec, kernel: KernelUnderTest | None) -> L1Image:
    """The image stage: Debian's kernel (vfio as shipped or rebuilt unfixed), or the user's."""
    prof = spec.profile
    with s.builder() as b:
        if kernel is None:
            return L1Image(b.l1(prof, spec.l1_vfio))
        for w in kernel.warnings:
            s.progress.note(f"warning: {w}")
        return L1Image(b.l1_with_kernel(prof, KernelSource(kernel.kernel, kernel.modules_dir, kernel.release,
                                                           {"from": kernel.source,
                                                            "version_string": kernel.version_string})))


class DeviceChoice(NamedTuple):
    """The device stage's result: the device under test, and why it."""

    kind: str
    why: str


VFIO_USER_DEVICES = (DeviceKind.LEGACY, DeviceKind.LEGACY_2_3)   # served over vfio-user: probed first


def choose_device(requested: str | None, mach: MachineProfile, qemu: QemuBinary, s: Session,
                  scenario: str = Scenario.FLOW) -> DeviceChoice:
    """The requested device, or the machine's first that this QEMU can run here (and that
    can carry the scenario): a vfio-user device only where the probe says this QEMU
    survives it on this machine."""
    if requested:
        if requested in VFIO_USER_DEVICES:
            ok, why = vfio_user_usable(mach, qemu, s.cache)
            if not ok:
                raise UserError(f"--device {requested} --arch {mach.arch} --machine {mach.name} is "
                                f"unsupported by this QEMU: {why}")
        return DeviceChoice(requested, "requested")
    skipped = ""
    for kind in mach.devices:
        if scenario_problem(scenario, kind, mach):
            continue
        if kind not in VFIO_USER_DEVICES:
            return DeviceChoice(kind, f"default on {mach.name}{skipped}")
        ok, why = vfio_user_usable(mach, qemu, s.cache)
        if ok:
            return DeviceChoice(kind, "default: a true PCI 2.2 device over vfio-user")
        skipped = f"; the legacy device is not usable here: {why}"
    raise UserError(f"--machine {mach.name}: none of its devices runs with {qemu.describe()}{skipped}")


def restore_helper(s: Session, spec: RunSpec, image: GuestImage) -> Path | None:
    """The machine's L1 helper module for a chain restore (rig.core.targets'
    nested_kvm_restore_helper), built for the rig's own Debian kernel; None where the
    machine needs none or the run has no L2."""
    helper = spec.machine_profile.nested_kvm_restore_helper
    if helper is None or spec.consumer != Consumer.L2:
        return None
    return L1Helper(s.cache, s.resolver, s.progress).module(helper.module, spec.profile, image.kernel_version)


def snapshot_store(s: Session, spec: RunSpec, device: Device, kernel: KernelUnderTest | None) -> SnapshotStore | None:
    """Where this run's L1 is saved and restored from; None: it boots (asked for, a device
    that cannot migrate, a machine QEMU does not restore). On a machine whose L0 leaves L1's
    nested-KVM state out of a snapshot, a user's kernel boots too when L2 may run under KVM:
    its KVM is usually built in and set up at boot (so even a snapshot of L1 alone holds
    that state), and the helper module that puts it back is built only for Debian's kernel."""
    mach = spec.machine_profile
    if not spec.snapshot or not (device.migratable or device.hotplugged) or mach.snapshot_problem:
        return None
    if kernel and spec.consumer == Consumer.L2 and spec.l2_accel != AccelChoice.TCG \
            and mach.nested_kvm_snapshot_problem:
        s.progress.note(f"L1 boots, not restored from a snapshot: {mach.nested_kvm_snapshot_problem}, and with "
                        "your kernel there is no helper module to make up for it")
        return None
    return SnapshotStore(s.cache)


def hotplugs(spec: RunSpec, kernel: KernelUnderTest | None) -> bool:
    """Whether a device that cannot migrate is added once L1 runs (so that L1 alone is
    saved and restored): with snapshots, on a machine that restores, with the rig's own
    Debian kernel (its hotplug and serial drivers are known; a user's kernel may lack them,
    and boots with the device in place)."""
    return spec.snapshot and kernel is None and spec.machine_profile.snapshot_problem is None


def describe_fix(fix: bool | None, where: str) -> str:
    if fix is None:
        return f"whether {where} has the INTx fix could not be read"
    return f"{where} {'has' if fix else 'lacks'} the INTx fix"


class ChainFailed(InfraError):
    """The chain failed, setting up or running (the cause's one line), with what was known
    of the run by then (result.json says as much for an ERROR)."""

    def __init__(self, cause: InfraError, facts: RunFacts):
        super().__init__(str(cause))
        self.facts = facts


def run_facts_of(spec: RunSpec) -> RunFacts:
    """What a run is known to be before any stage runs."""
    return RunFacts(spec.arch, spec.interrupt_controller, spec.consumer, machine=spec.machine_profile.name)


@contextmanager
def running_chain(s: Session, spec: RunSpec, out: Path, kernel: KernelUnderTest | None = None) -> Iterator[Chain]:
    """L0 -> L1 -> L2 up, the device bound and read by the consumer (`chain.run_facts`: what
    the L0, image and device stages returned); torn down on exit however it ends. A failure
    of the machinery is a ChainFailed with what was known by then."""
    known = run_facts_of(spec)
    try:
        l0 = start_l0(s, spec.machine_profile)
        if kernel:      # known before its image is built: an ERROR building it still says what was given
            known = replace(known, l1_kernel_input=KernelInputFacts(kernel.source, kernel.version_string,
                                                                    kernel.config_source, kernel.warnings))
        img = l1_image(s, spec, kernel)
        s.progress.step(f"{l0.describe()}; {img.describe_fix()}")
        choice = choose_device(spec.device, spec.machine_profile, l0.qemu, s, spec.scenario)
        s.progress.step(f"device: {choice.kind} ({choice.why})")
        if l0.accel.plan and l0.accel.plan.warning:
            s.progress.note(f"warning: {l0.accel.plan.warning}")
        known = replace(known, l0=l0.facts(), l1=img.facts("the kernel under test's" if kernel else spec.l1_vfio),
                        device=choice.kind, device_reason=choice.why)
        with chain_on(s, spec, out, kernel, l0, img.image, known) as chain:
            yield chain
    except ChainFailed:
        raise
    except InfraError as e:
        raise ChainFailed(e, known) from e


@contextmanager
def chain_on(s: Session, spec: RunSpec, out: Path, kernel: KernelUnderTest | None, l0: L0, image: GuestImage,
             known: RunFacts) -> Iterator[Chain]:
    """The device, L1 and the chain, from the stages before them."""
    assert known.l0 is not None and known.device is not None     # running_chain's stages ran
    mach = spec.machine_profile
    with RunDir("run") as run_dir:
        device = make_device(known.device, mach, l0.qemu, run_dir, out, hotplug=hotplugs(spec, kernel),
                             twin=spec.scenario == Scenario.EXCLUSIVE)
        try:
            snapshots = snapshot_store(s, spec, device, kernel)
            # A built-in vfio-pci reads nointxmask from the command line, a module from modprobe.
            config = GuestConfig(ic=spec.interrupt_controller, machine=mach, extra_args=device.qemu_args(),
                                 smp=spec.l1_smp, snapshots=snapshots,
                                 extra_cmdline="vfio_pci.nointxmask=1" if device.needs_nointxmask else "")
            helper = restore_helper(s, spec, image) if snapshots and kernel is None else None
            with l0.l1(s, image, run_dir, out, config) as l1:
                known = replace(known, l0=replace(known.l0, command=l1.machine.command_line()))
                chain = Chain(spec.profile, mach, l1, device, out, s.progress, l2_accel=spec.l2_accel,
                              consumer=spec.consumer, restore_helper=helper, run_facts=known,
                              scenario=spec.scenario, coverage=gcov.build_dir_of(kernel) is not None)
                try:
                    chain.start(boot_timeout=spec.boot_timeout, l2_hang_s=spec.l2_hang_s)
                    yield chain
                except InfraError as e:
                    raise ChainFailed(e, known) from e
                finally:
                    chain.close()
                # Only on the way out without an exception. Quit, not power off: the run has
                # read all it needs and L1 keeps nothing (it runs from its initramfs); a
                # powerdown took 1.3 s of every run.
                l1.shutdown(timeout=timeouts.L1_POWERDOWN_AFTER_RUN_S, powerdown=False)
        finally:
            device.close()

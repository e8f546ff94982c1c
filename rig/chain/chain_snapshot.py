"""A whole chain from a snapshot: L1 saved once the device is bound (and L2 booted in it), and
restored by the next run of the same chain instead of booting, binding and starting L2 again
(rig.guests.snapshot keeps the streams; what the bind found is recorded beside them).

ChainSnapshots is the part of rig.chain.chain.Chain that saves and restores; the attributes
and methods it uses are the Chain's own, declared here.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

from rig.chain.bind import Bound
from rig.chain.device import Device
from rig.chain.facts import ChainFacts
from rig.chain.restore_helper import RestoreHelper
from rig.chain.stages import Binding, ChainStages, L1Started, L2Plan, L2Started, SavedChain
from rig.core import timeouts
from rig.core.cache import content_key
from rig.core.errors import InfraError
from rig.core.kinds import Accelerator, Consumer, GuestStart
from rig.core.progress import Progress
from rig.core.targets import TargetProfile
from rig.guests.l1 import L1Guest
from rig.guests.l2 import L2Guest, l2_command
from rig.guests.snapshot import BadSnapshot, SnapshotStore

log = logging.getLogger(__name__)

CHAIN_SH = Path(__file__).parent / "sh"
# How a chain snapshot is taken, part of its key: one taken otherwise is never restored.
SAVED_WITH = "L2 stopped (QMP stop) while L1 is saved"


class ChainSnapshots:
    """Saving a started chain, and starting one from its snapshot (Chain.start tries that
    first)."""

    # The Chain's, used here.
    profile: TargetProfile
    l1: L1Guest
    l2: L2Guest | None
    device: Device
    out: Path
    progress: Progress
    consumer: Consumer
    l2_accel_request: str
    nointxmask: bool
    restore_helper: RestoreHelper
    stages: ChainStages
    times: dict[str, float]

    @property
    def facts(self) -> ChainFacts:
        raise NotImplementedError      # the Chain's

    def _l2_accel(self) -> str:
        raise NotImplementedError

    def _bound(self) -> Bound:
        raise NotImplementedError

    def _attach_device(self) -> None:
        raise NotImplementedError

    def _device_joins_late(self) -> bool:
        """A device that cannot migrate, hotplugged into L1, joins a chain with L2 once L2
        runs (into L1, bound, then into L2 by L1's QEMU: Chain._pass_device_on), so that L1
        with L2 in it is saved and restored without it, as other chains are with theirs."""
        return self.device.hotplugged and self.consumer == Consumer.L2 and self.profile.l2.hotplug_bus is not None

    def _chain_saveable(self) -> bool:
        return self.device.migratable or self._device_joins_late()

    def _chain_held(self) -> str:
        """What a chain snapshot of this consumer holds, for progress lines."""
        return "L1-with-L2" if self.consumer == Consumer.L2 else "L1-with-the-device-bound"

    def chain_key(self) -> str:
        """What shapes L1 with the device bound (and L2 booted in it), beyond L1 itself:
        how the device is bound, how L2 is chosen and started."""
        return content_key("chain", SAVED_WITH, self.l1.snapshot_key(), self.consumer, self.l2_accel_request,
                           self.nointxmask, (CHAIN_SH / "bind.sh").read_text(),
                           *(l2_command(self.profile, a, None if self._device_joins_late() else "DEV")
                             for a in (Accelerator.KVM, Accelerator.TCG)))

    def _save_chain(self) -> None:
        """Once the device is bound and L2 (if any) up, nothing driven yet: L1 saved as it
        is, for later runs of the same chain (rig.guests.snapshot); what the bind found
        recorded beside, and what the machine's restore helper will need."""
        store = self.l1.config.snapshots
        if store is None or not self._chain_saveable():     # the device would be in it
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
        if store is None or not self._chain_saveable():
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
        """What the bind found (and how L2 is run), from beside the snapshot (a device that
        joins late is neither in L1 nor bound yet)."""
        late = self._device_joins_late()
        if not late:
            self._attach_device()
        self.times["l1_ready_s"] = time.monotonic() - t0
        self.times["l1_restore_s"] = round(self.l1.times.snapshot_s, 2)
        was = saved.facts
        self.stages = replace(self.stages, l1=L1Started(GuestStart.RESTORED, self.l1.times.snapshot, helper_line),
                              binding=None if late else Binding.of_saved(was), l2_plan=L2Plan.of_saved(was))
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
        device = ("the device joins it next" if self._device_joins_late()
                  else f"device {self._bound().device} bound as before")
        self.progress.note(f"L2 ({plan.accel.upper()}) running again, SSH after "
                           f"{self.times['l2_ssh_s']:.1f} s; {device}")


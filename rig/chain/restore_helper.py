"""The machine's helper module for a chain restore (rig.core.targets'
nested_kvm_restore_helper): where L0 leaves part of L1's nested-KVM state out of a snapshot
(pseries), L1 is saved only if the helper can put it back, with the address the helper
takes looked up at the save; after the restore the helper is loaded in L1
(rig/chain/sh/l1_helper.sh) before L2 runs again."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from rig.core import timeouts
from rig.core.errors import InfraError
from rig.core.kinds import Accelerator
from rig.core.shell import guest_script
from rig.core.targets import MachineProfile
from rig.guests.snapshot import BadSnapshot
from rig.guests.ssh import GuestSSH


@dataclass(frozen=True)
class HelperRan:
    module: str
    line: str            # the helper's own line in L1's kernel log
    seconds: float


@dataclass(frozen=True)
class RestoreHelper:
    machine: MachineProfile
    module: Path | None          # built for L1's kernel; None: none here (or not the rig's own kernel)

    def needed(self, l2_accel: str) -> bool:
        return (l2_accel == Accelerator.KVM and bool(self.machine.nested_kvm_snapshot_problem)
                and self.machine.nested_kvm_restore_helper is not None)

    def problem(self, l2_accel: str) -> str | None:
        """Why L1 cannot be saved with this L2 running in it (a KVM L2 on a machine whose
        L0 leaves its nested-guest state out of the migration, with no helper module for
        L1's kernel to put it back), or None."""
        problem = self.machine.nested_kvm_snapshot_problem if l2_accel == Accelerator.KVM else None
        if problem is None or self.module is not None:
            return None
        if self.machine.nested_kvm_restore_helper:
            return f"{problem}; the helper module that makes up for it is built only for the rig's own Debian kernel"
        return problem

    def address(self, ssh: GuestSSH, l2_accel: str) -> str:
        """The address the helper takes (the same in every restore of this snapshot), looked
        up at the save; "" where no helper will run."""
        helper = self.machine.nested_kvm_restore_helper
        if helper is None or not self.needed(l2_accel):
            return ""
        r = ssh.run(guest_script("rig.chain", "kallsyms.sh", helper.symbol), timeout=timeouts.SSH_COMMAND_S)
        if r.status != 0:
            raise InfraError(f"L1: {helper.symbol} for {helper.module}: {(r.stderr or r.stdout).strip()[-300:]}")
        return r.stdout.strip()

    def run(self, ssh: GuestSSH, l2_accel: str, address: str) -> HelperRan | None:
        """After the restore: the helper loaded in L1 with the address recorded with the
        snapshot; None where none is needed."""
        helper = self.machine.nested_kvm_restore_helper
        if helper is None or not self.needed(l2_accel):
            return None
        if not address:       # saved without it: no run can ever restore this chain
            raise BadSnapshot(f"no address for {helper.module} in the snapshot")
        if self.module is None:
            raise InfraError(f"no {helper.module} module for this kernel")
        t = time.monotonic()
        target = f"/run/{helper.module}.ko"
        ssh.put(self.module.read_bytes(), target)
        r = ssh.run(guest_script("rig.chain", "l1_helper.sh", target, helper.param, address),
                    timeout=timeouts.SSH_COMMAND_S)
        if r.status != 0:
            raise InfraError(f"L1 helper {helper.module} failed (status {r.status}): "
                             f"{(r.stderr or r.stdout).strip()[-300:]}")
        return HelperRan(helper.module, r.stdout.strip().split("] ", 1)[-1], round(time.monotonic() - t, 2))

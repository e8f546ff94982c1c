"""The checks on a spec that need the host, still before anything is downloaded, built or
booted: a given QEMU binary is a QEMU for the arch, a given kernel is one for the arch.
(rig.core.spec has checked everything that needs no more than the file system.)"""

from __future__ import annotations

import subprocess

from rig.core import timeouts
from rig.core.errors import UserError
from rig.core.targets import MachineProfile, TargetProfile
from rig.host.qemu import MINIMUM_VERSION, explicit_qemu
from rig.kernel.image_file import check_kernel


def check_qemu(path: str, prof: TargetProfile, mach: MachineProfile) -> None:
    """--qemu is a QEMU, new enough, that emulates the L1 machine."""
    q = explicit_qemu(path)
    try:
        q.require(MINIMUM_VERSION, "the rig")
        machines = q.run("-machine", "help", timeout=timeouts.QEMU_QUERY_S)
    except (OSError, subprocess.SubprocessError) as e:
        raise UserError(f"--qemu {path}: does not run as QEMU ({e})") from e
    machine = mach.machine.split(",")[0]
    if not any(line.split()[:1] == [machine] for line in machines.splitlines()):
        raise UserError(f"--qemu {path}: has no {machine} machine, so it cannot run {prof.name} guests; "
                        f"give a {prof.qemu_system}")


def check_kernel_file(path: str, prof: TargetProfile) -> None:
    check_kernel(path, prof)

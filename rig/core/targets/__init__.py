"""Targets as data: one file per guest architecture (x86_64, ppc64) and one per machine L0
runs L1 on (q35, pseries, powernv). Adding a machine is one file and one line below."""

from __future__ import annotations

from rig.core.errors import UserError
from rig.core.targets.model import (
    COMMON_CONFIG,
    COMMON_MODULES,
    L2_MODULES,
    KvmModule,
    L2Profile,
    MachineProfile,
    NestedRestoreHelper,
    TargetProfile,
)
from rig.core.targets.powernv import POWERNV
from rig.core.targets.ppc64 import PPC64
from rig.core.targets.pseries import PSERIES
from rig.core.targets.q35 import Q35
from rig.core.targets.x86_64 import X86_64

PROFILES = {p.name: p for p in (X86_64, PPC64)}
MACHINES = {m.key: m for m in (Q35, PSERIES, POWERNV)}

__all__ = ["COMMON_CONFIG", "COMMON_MODULES", "L2_MODULES", "KvmModule", "L2Profile", "MachineProfile", "TargetProfile",
           "NestedRestoreHelper",
           "PROFILES", "MACHINES", "X86_64", "PPC64", "Q35", "PSERIES", "POWERNV",
           "profile", "machine", "machines_of", "kernel_options"]


def profile(name: str) -> TargetProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise UserError(f"unknown arch {name!r}: use one of {', '.join(sorted(PROFILES))}") from None


def machines_of(arch: str) -> tuple[MachineProfile, ...]:
    """The arch's machines, its default first."""
    default = profile(arch).default_machine
    return tuple(sorted((m for m in MACHINES.values() if m.arch == arch), key=lambda m: m.name != default))


def machine(arch: str, name: str | None = None) -> MachineProfile:
    """The named machine of the arch (None: its default); one line if it has no such machine."""
    prof = profile(arch)
    found = MACHINES.get(f"{arch}-{name or prof.default_machine}")
    if found is None:
        raise UserError(f"--machine {name}: {arch} runs on {', '.join(m.name for m in machines_of(arch))}")
    return found


def kernel_options(prof: TargetProfile, mach: MachineProfile | None = None) -> tuple[str, ...]:
    """What an L1 kernel must have: the arch's options and the machine's (every machine's
    when none is named: a kernel built for the arch may boot on any of them)."""
    machines = (mach,) if mach else machines_of(prof.name)
    return prof.required_config + tuple(o for m in machines for o in m.required_config)

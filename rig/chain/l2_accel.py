"""Which accelerator L2 runs under: KVM where L1 has a working /dev/kvm (nested
virtualization offered by L0), else TCG; `--l2-accel` forces one, and asking for KVM where
L1 has none is an ERROR, not a silent TCG run (a TCG L2 boots for minutes, docs/facts.md)."""

from __future__ import annotations

from dataclasses import dataclass

from rig.core.errors import InfraError
from rig.core.kinds import AccelChoice, Accelerator


@dataclass(frozen=True)
class L2Accel:
    """The L2-accelerator stage's result (result.json chain.l2_accel, chain.l2_accel_reason)."""

    accel: Accelerator
    reason: str


def choose_l2_accel(requested: str, l1_has_kvm: bool, l1_kvm_module: str) -> L2Accel:
    """From what was asked (auto, kvm, tcg) and what L1 has after loading its KVM module
    (`l1_kvm_module`, "" if its CPU offers no virtualization)."""
    if requested == AccelChoice.KVM and not l1_has_kvm:
        raise InfraError("--l2-accel kvm asked for, but L1 has no /dev/kvm after loading "
                         f"{l1_kvm_module or 'no KVM module (its CPU shows no virtualization)'}")
    use_kvm = l1_has_kvm and requested != AccelChoice.TCG
    reason = ("requested" if requested != AccelChoice.AUTO else
              f"/dev/kvm works in L1 ({l1_kvm_module})" if l1_has_kvm else "no /dev/kvm in L1")
    return L2Accel(Accelerator.KVM if use_kvm else Accelerator.TCG, reason)

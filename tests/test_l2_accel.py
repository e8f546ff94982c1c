"""Which accelerator L2 gets (rig.chain.l2_accel): a pure choice from what was asked and
what L1 has."""

import pytest

from rig.chain.l2_accel import choose_l2_accel
from rig.core.errors import InfraError

pytestmark = pytest.mark.unit


def test_kvm_where_l1_has_it_unless_tcg_is_asked_for():
    auto = choose_l2_accel("auto", True, "kvm_intel nested=1")
    assert (auto.accel, auto.reason) == ("kvm", "/dev/kvm works in L1 (kvm_intel nested=1)")
    assert choose_l2_accel("tcg", True, "kvm_intel nested=1").accel == "tcg"
    assert (choose_l2_accel("kvm", True, "kvm_hv").accel, choose_l2_accel("kvm", True, "kvm_hv").reason) == \
        ("kvm", "requested")


def test_tcg_where_l1_has_no_kvm_and_kvm_asked_for_there_is_an_error():
    none = choose_l2_accel("auto", False, "")
    assert (none.accel, none.reason) == ("tcg", "no /dev/kvm in L1")
    with pytest.raises(InfraError, match="no KVM module"):
        choose_l2_accel("kvm", False, "")
    with pytest.raises(InfraError, match="after loading kvm_amd nested=1"):
        choose_l2_accel("kvm", False, "kvm_amd nested=1")

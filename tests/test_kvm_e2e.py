"""On a KVM host (an Intel or AMD workstation with nesting on): x86 L1 under KVM, L2 under
KVM nested inside it, gives the same verdicts as under TCG. Where the host cannot, each test
is skipped with the reason the host gives (pytest -ra prints it), never silently."""

import pytest
from conftest import load_result, run_rig

from rig.chain.session import Session
from rig.core.spec import DriveSpec, MatrixSpec
from rig.core.targets import PROFILES
from rig.host.accel import host_plan
from rig.matrix import cells as matrix

pytestmark = pytest.mark.e2e

X86_L2_KVM = [c for c in matrix.select(matrix.all_cells(), MatrixSpec(cells=("x86_64-*-l2-kvm",)))]


@pytest.fixture(scope="module")
def nested_kvm(rig_cache_dir):
    x86 = PROFILES["x86_64"]
    s = Session(rig_cache_dir)
    plan = host_plan(x86, s.qemu(x86))
    if (plan.l1, plan.l2) != ("kvm", "kvm"):
        pytest.skip(f"no nested KVM for an x86_64 L1 on this host: L1 would run under {plan.l1.upper()} "
                    f"({plan.l1_why}); L2 under {plan.l2.upper()} ({plan.l2_why})")
    return plan


@pytest.mark.parametrize("cell", X86_L2_KVM, ids=[c.id for c in X86_L2_KVM])
def test_x86_under_kvm_with_a_nested_kvm_l2_gives_the_tcg_verdicts(cell, nested_kvm, rig_cache_dir, short_tmp):
    out = short_tmp / "out"
    r = run_rig(*cell.run_args(DriveSpec(20, 5, 0)), "--out", str(out), cache=rig_cache_dir,
                env={"RIG_RUN_DIR": str(short_tmp)}, timeout=1200)
    result = load_result(out)
    assert result["verdict"]["verdict"] == cell.expectation().verdict, r.stderr[-2000:]
    assert result["l0"]["accel"] == "kvm" and result["chain"]["l2_accel"] == "kvm"
    assert result["chain"]["l1_kvm_module"].startswith(nested_kvm.module)   # L1's CPU is the host's

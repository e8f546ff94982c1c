"""Whether a run's L1 is restored from a snapshot or booted (rig.chain.setup.snapshot_store):
a choice from the spec, the device and the kernel, tested without a guest."""

from pathlib import Path
from types import SimpleNamespace

import pytest

from rig.chain.setup import snapshot_store
from rig.core.cache import Cache
from rig.core.progress import Progress
from rig.core.spec import RunSpec

pytestmark = pytest.mark.unit

MIGRATABLE = SimpleNamespace(migratable=True)
USERS = SimpleNamespace(kernel=Path("/k/vmlinux"))       # stands for a KernelUnderTest


@pytest.fixture
def session(tmp_path):
    return SimpleNamespace(cache=Cache(tmp_path / "cache"), progress=Progress(quiet=True))


@pytest.mark.parametrize("spec, kernel, restores", [
    # pseries' L0 leaves L1's nested-KVM state out of a snapshot; a user's kernel has no helper
    (RunSpec("ppc64", machine="pseries"), USERS, False),
    (RunSpec("ppc64", machine="pseries", l2_accel="kvm"), USERS, False),
    (RunSpec("ppc64", machine="pseries", l2_accel="tcg"), USERS, True),      # no KVM L2: nothing lost
    (RunSpec("ppc64", machine="pseries", consumer="userspace"), USERS, True),
    (RunSpec("ppc64", machine="pseries"), None, True),                       # Debian's: the helper
    (RunSpec("x86_64"), USERS, True),                                        # q35 carries it back
    (RunSpec("ppc64", machine="pseries", snapshot=False), None, False),      # asked
])
def test_a_users_kernel_boots_where_a_restored_l1_could_not_run_its_kvm_l2(session, spec, kernel, restores):
    assert (snapshot_store(session, spec, MIGRATABLE, kernel) is not None) is restores


def test_a_device_that_cannot_migrate_boots(session):
    assert snapshot_store(session, RunSpec("x86_64"), SimpleNamespace(migratable=False), None) is None

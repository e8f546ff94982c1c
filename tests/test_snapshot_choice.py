"""Whether a run's L1 is restored from a snapshot or booted (rig.chain.setup.snapshot_store):
a choice from the spec, the device and the kernel, tested without a guest."""

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from rig.chain import stages as st
from rig.chain.bind import Bound
from rig.chain.chain import Chain
from rig.chain.chain_snapshot import ChainSnapshots
from rig.chain.setup import hotplugs, snapshot_store
from rig.core import timeouts
from rig.core.cache import Cache
from rig.core.kinds import Consumer
from rig.core.progress import Progress
from rig.core.spec import RunSpec
from rig.core.targets import PROFILES
from rig.guests.l2 import l2_command, passthrough_spec

pytestmark = pytest.mark.unit

MIGRATABLE = SimpleNamespace(migratable=True, hotplugged=False)
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


def test_a_device_that_cannot_migrate_boots_unless_it_is_hotplugged(session):
    assert snapshot_store(session, RunSpec("x86_64"), SimpleNamespace(migratable=False, hotplugged=False),
                          None) is None
    assert snapshot_store(session, RunSpec("x86_64"), SimpleNamespace(migratable=False, hotplugged=True),
                          None) is not None


@pytest.mark.parametrize("spec, kernel, hotplug", [
    (RunSpec("x86_64", device="legacy"), None, True),
    (RunSpec("x86_64", device="legacy"), USERS, False),                 # a user's kernel may lack the drivers
    (RunSpec("x86_64", device="legacy", snapshot=False), None, False),  # asked to boot: the device in place
    (RunSpec("ppc64", machine="powernv"), None, False),                 # PowerNV is never restored
])
def test_a_device_that_cannot_migrate_is_hotplugged_only_where_l1_is_restored(spec, kernel, hotplug):
    assert hotplugs(spec, kernel) is hotplug


def test_the_hotplugged_legacy_device_waits_on_an_empty_root_port_and_is_added_there(tmp_path):
    """L1 starts with an empty hotplug slot (part of its snapshot key: the same for both legacy
    devices) and the device is added there; without hotplug it is on the command line."""
    from rig.chain.device import LegacyDevice
    from rig.core.targets import Q35
    from rig.host.rundir import RunDir
    with RunDir("hp") as rd:
        hot, cold = LegacyDevice(Q35, rd, hotplug=True), None
        try:
            assert hot.hotplugged and hot.qemu_args() == list(Q35.hotplug_bus_args)
            assert hot.device_spec()["bus"] == Q35.hotplug_bus and hot.device_spec()["driver"] == "vfio-user-pci"
        finally:
            hot.close()
        cold = LegacyDevice(Q35, rd)
        try:
            assert not cold.hotplugged and "vfio-user-pci" in cold.qemu_args()[-1]
            assert "bus" not in cold.device_spec()
        finally:
            cold.close()


class Snapshots(ChainSnapshots):
    """A chain's snapshot choices without a chain: the attributes they read, set by hand."""


@pytest.mark.parametrize("arch, consumer, hotplugged, late", [
    ("x86_64", Consumer.L2, True, True),
    ("x86_64", Consumer.USERSPACE, True, False),   # fast mode: L1 alone is saved, the device hotplugged
    ("x86_64", Consumer.L2, False, False),         # on L1's command line from its start: no chain saved
    ("ppc64", Consumer.L2, True, False),           # the rig adds nothing to a running pseries L2
])
def test_a_device_that_cannot_migrate_joins_a_saved_chain_once_l2_runs(arch, consumer, hotplugged, late):
    snaps = Snapshots()
    snaps.profile, snaps.consumer = PROFILES[arch], consumer
    snaps.device = SimpleNamespace(migratable=False, hotplugged=hotplugged)  # type: ignore[assignment]
    assert snaps._device_joins_late() is late and snaps._chain_saveable() is late


def test_l2_starts_with_an_empty_root_port_for_a_device_that_joins_late():
    x86 = PROFILES["x86_64"]
    late, in_place = l2_command(x86, "kvm", None), l2_command(x86, "kvm", "0000:01:00.0")
    assert "vfio-pci,host=0000:01:00.0,id=passthrough0" in in_place and not any("vfio-pci" in a for a in late)
    assert [a for a in late if a not in in_place] == [x86.l2.hotplug_bus_args[1]]
    assert passthrough_spec(x86, "0000:01:00.0") == {"driver": "vfio-pci", "host": "0000:01:00.0",
                                                     "id": "passthrough0", "bus": x86.l2.hotplug_bus}


def test_an_l2_that_does_not_take_the_device_is_booted_again_with_it_in_place(tmp_path):
    """The drive has not begun: as for an L2 that fails its boot, the failure is recorded
    (with its console kept) and L2 boots with the device on its command line."""
    chain = Chain.__new__(Chain)       # the parts this step reads, set by hand
    x86 = PROFILES["x86_64"]
    chain.profile, chain.out, chain.progress = x86, tmp_path, Progress(quiet=True)
    chain._asked_limits = (None, 120.0)
    stopped, started = [], []
    chain.l2 = SimpleNamespace(stop=lambda: stopped.append(True))   # type: ignore[assignment]
    (tmp_path / "l2-console.log").write_text("the restored L2's console")
    plan = st.L2Plan("kvm", "L1 has /dev/kvm", tuple(l2_command(x86, "kvm", None)))
    chain.stages = replace(st.ChainStages(), l2_plan=plan, binding=st.Binding(
        Bound("0000:01:00.0", "4", True, False, False), "kvm_amd", "", "", ""))
    chain._start_l2 = lambda plan, timeout, hang_s, earlier_failures: started.append(  # type: ignore[method-assign]
        (plan, timeout, hang_s, earlier_failures))
    chain._l2_again_with_the_device("L2 stopped answering")
    [(again, timeout, hang_s, failures)] = started
    assert stopped and chain.l2 is None and "vfio-pci,host=0000:01:00.0,id=passthrough0" in again.command
    assert chain.stages.l2_plan == again and (timeout, hang_s) == (timeouts.BOOT_S, 120.0)
    assert failures == ("L2 stopped answering (its console: l2-console-device-failed.log)",)
    assert (tmp_path / "l2-console-device-failed.log").read_text() == "the restored L2's console"

"""The rig_chain fixture, used as a user would: checks against a running chain."""

import pytest

from rig.core.spec import DriveSpec

# One chain serves both tests: under pytest-xdist they stay on one worker.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("rig_chain")]


def test_l1_bound_the_device_to_vfio_pci(rig_chain):
    dev = rig_chain.facts.l1_device
    out = rig_chain.l1.ssh.run(f"basename $(readlink /sys/bus/pci/devices/{dev}/driver)").stdout
    assert out.strip() == "vfio-pci"


def test_l2_sees_the_device_and_interrupts_flow(rig_chain):
    assert rig_chain.facts.consumer_tty.startswith("ttyS")
    verdict = rig_chain.drive(DriveSpec(duration=10, pass_after=30, min_serviced=5))
    assert verdict.outcome == "PASS", verdict.reason
    l1, l2 = rig_chain.counts()
    assert l1 >= verdict.stopped_at["serviced"] and l2 >= verdict.stopped_at["serviced"]


def test_each_drive_is_traced_on_its_own(rig_chain):
    """The interrupt path of every drive on the fixture's chain: the second is traced anew."""
    for _ in range(2):
        verdict = rig_chain.drive(DriveSpec(duration=5, pass_after=10, min_serviced=5))
        path = rig_chain.interrupt_path
        assert verdict.outcome == "PASS" and path.stopped_layer is None and path.notes == []
        pushes = path.lanes["device"].kinds["push"]
        assert pushes == verdict.stopped_at["device_sent"]          # this drive's pushes only
        assert path.lanes["l1_host"].kinds["handler"] >= 5

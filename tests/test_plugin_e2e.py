"""The rig_chain fixture, used as a user would: checks against a running chain."""

import pytest

from rig.chain import DriveConfig

# One chain serves both tests: under pytest-xdist they stay on one worker.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("rig_chain")]


def test_l1_bound_the_device_to_vfio_pci(rig_chain):
    dev = rig_chain.facts.l1_device
    out = rig_chain.l1.ssh.run(f"basename $(readlink /sys/bus/pci/devices/{dev}/driver)").stdout
    assert out.strip() == "vfio-pci"


def test_l2_sees_the_device_and_interrupts_flow(rig_chain):
    assert rig_chain.facts.consumer_tty.startswith("ttyS")
    verdict = rig_chain.drive(DriveConfig(duration=10, min_serviced=5))
    assert verdict.verdict == "PASS", verdict.reason
    l1, l2, _, _ = rig_chain.counts()
    assert l1 >= verdict.stopped_at["serviced"] and l2 >= verdict.stopped_at["serviced"]

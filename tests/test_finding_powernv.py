"""`rig finding-powernv-restore`'s reading of QEMU's monitor (rig.commands.finding_powernv),
on `info pic` and `info pci` recorded from a powernv9 L1 booted and then restored by QEMU
11.1.3 (2026-12-06)."""

import pytest
from conftest import ROOT

from rig.commands.finding_powernv import controller_state, section

pytestmark = pytest.mark.unit

DATA = ROOT / "tests/data"


def test_a_booted_powernv_routes_its_sources_and_reaches_its_nic():
    state = controller_state((DATA / "info-pic-powernv.txt").read_text(), (DATA / "info-pci-powernv.txt").read_text())
    assert state.routed >= 10 and state.queues >= 1
    assert (state.secondary_bus, state.devices_behind) == (1, 1)


def test_a_restored_powernv_has_no_routing_and_no_nic():
    """The XIVE tables and the root port's bus numbers are not in the migration."""
    state = controller_state((DATA / "info-pic-powernv-restored.txt").read_text(),
                             (DATA / "info-pci-powernv-restored.txt").read_text())
    assert (state.routed, state.queues, state.secondary_bus, state.devices_behind) == (0, 0, 0, 0)
    assert "XIVE routes 0 sources to 0 event queue(s)" in state.describe()


def test_a_section_ends_at_the_next_header():
    pic = "XIVE[0] #0 EAT 0 .. f\n  00000011   end:00/000f\nXIVE[0] #0 ENDT\n  0000000f -Q prio:7\n  00000010 x\n"
    assert len(section(pic, "EAT")) == 1 and len(section(pic, "ENDT")) == 2
    assert section(pic, "NVTT") == []

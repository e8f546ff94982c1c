"""Why PowerNV is never restored (docs/findings/qemu-powernv-migrates-without-its-controllers.md):
the QEMU the rig runs describes no migration state for powernv9's XIVE, PSI and PHB4, so a
migrated powernv9 guest resumes with its interrupt controller and PCI host bridges as at
reset. The day a QEMU migrates them, this test fails: try restoring PowerNV then
(rig.core.targets.powernv's snapshot_problem). No guest is needed: QEMU's -dump-vmstate."""

import json

import pytest

from rig.chain.session import Session
from rig.core.progress import Progress
from rig.core.targets import POWERNV, profile

pytestmark = pytest.mark.integration

# powernv9's devices whose registers skiboot and Linux program at boot: XIVE's tables and
# BARs, the PSI bridge, the PHB4s and their PECs, and the root ports the rig puts on them
# (their bridge windows and bus numbers).
SET_UP_BY_FIRMWARE = ("pnv-xive", "pnv-psi-POWER9", "pnv-phb4", "pnv-phb4-pec", "pnv-phb-root-port")


def test_qemu_migrates_no_state_of_powernv9s_interrupt_controller_or_host_bridges(rig_cache_dir, tmp_path):
    qemu = Session(rig_cache_dir, progress=Progress(quiet=True)).qemu(profile("ppc64"))
    dump = tmp_path / "vmstate.json"
    said = qemu.run("-M", "powernv9", "-nographic", "-dump-vmstate", str(dump))
    assert dump.is_file(), f"{qemu.describe()} wrote no -dump-vmstate: {said[-500:]}"
    described = json.loads(dump.read_text())
    # The dump is of every device type with a migration description: these have one.
    assert {"xive-source", "pnv-lpc-POWER9", "pcie-root-port"} <= described.keys(), sorted(described)[:40]
    migrated = [t for t in SET_UP_BY_FIRMWARE if t in described]
    assert not migrated, (f"{qemu.describe()} now migrates {migrated}: a restored powernv9 L1 may answer; "
                          "try a snapshot of PowerNV (rig.core.targets.powernv snapshot_problem)")
    assert POWERNV.snapshot_problem and "pnv-xive" in POWERNV.snapshot_problem

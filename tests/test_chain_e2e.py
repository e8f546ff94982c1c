"""The nested chain, L0 -> L1 -> L2, with pci-serial passed through: the verdict cells
that can run today (the fixed Debian kernel; the unfixed module is still to come)."""

import json

import pytest

from conftest import run_rig
from test_boot import qemu_processes_under

pytestmark = pytest.mark.e2e

CELLS = [
    # (arch, ic, expected, why)
    ("ppc64", "xive", "PASS", "6.12.95 has the IRQ_DISABLE_UNLAZY fix"),
    ("ppc64", "xics", "PASS", "XICS re-sends on unmask: no stall even without the fix"),
    ("x86_64", None, "PASS", "the IOAPIC re-delivers: no stall"),
]


@pytest.mark.parametrize("arch, ic, expected, why", CELLS,
                         ids=[f"{a}-{i or 'ioapic'}" for a, i, _, _ in CELLS])
def test_cell(arch, ic, expected, why, rig_cache_dir, short_tmp):
    out = short_tmp / "out"
    args = ["run", "--arch", arch, "--duration", "20", "--out", str(out)]
    if ic:
        args += ["--ic", ic]
    r = run_rig(*args, cache=rig_cache_dir, env={"RIG_RUN_DIR": str(short_tmp)}, timeout=1200)
    result = json.loads((out / "result.json").read_text())
    assert result["verdict"]["verdict"] == expected, f"{why}: {result['verdict']} {r.stderr[-1500:]}"
    assert r.returncode == {"PASS": 0, "STALL": 1}[expected]
    last = result["samples"][-1]
    assert last["serviced"] >= 10 and last["l1"] >= last["serviced"] and last["l2"] >= last["serviced"]
    assert result["chain"]["l2_accel"] in ("kvm", "tcg") and result["l0"]["command"]
    for f in ("junit.xml", "timeline.svg", "l1-console.log", "l1-qemu.log", "l2-console.log"):
        assert (out / f).stat().st_size > 0, f
    assert qemu_processes_under(short_tmp) == []
    assert list((short_tmp / "intx-rig").iterdir()) == []

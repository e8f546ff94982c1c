"""The nested chain, L0 -> L1 -> L2, with pci-serial passed through: the five verdict cells
(DESIGN.md section 2), each with the reason for its expected verdict."""

import json

import pytest

from conftest import run_rig
from test_boot import qemu_processes_under

pytestmark = pytest.mark.e2e

CELLS = [
    # (arch, ic, L1 vfio, expected, why)
    ("ppc64", "xive", "fixed", "PASS", "6.12.95 sets IRQ_DISABLE_UNLAZY: XIVE masks, EOI happens"),
    ("ppc64", "xive", "unfixed", "STALL", "lazy disable: the XIVE source stays pending, no EOI"),
    ("ppc64", "xics", "unfixed", "PASS", "XICS re-sends on unmask: no stall even without the fix"),
    ("x86_64", None, "unfixed", "PASS", "the IOAPIC re-delivers on unmask: no stall"),
    ("x86_64", None, "fixed", "PASS", "the IOAPIC re-delivers, and the fix is there"),
]
DURATION = 20


@pytest.mark.parametrize("consumer", ["l2", "userspace"])
@pytest.mark.parametrize("arch, ic, vfio, expected, why", CELLS,
                         ids=[f"{a}-{i or 'ioapic'}-{v}" for a, i, v, _, _ in CELLS])
def test_cell(arch, ic, vfio, expected, why, consumer, rig_cache_dir, short_tmp):
    """The nested chain (consumer l2) and fast mode (a userspace VFIO program in L1, no L2)
    must give the same verdict on every cell."""
    out = short_tmp / "out"
    args = ["run", "--arch", arch, "--l1-vfio", vfio, "--consumer", consumer,
            "--duration", str(DURATION), "--out", str(out)]
    if ic:
        args += ["--ic", ic]
    r = run_rig(*args, cache=rig_cache_dir, env={"RIG_RUN_DIR": str(short_tmp)}, timeout=1200)
    result = json.loads((out / "result.json").read_text())
    assert result["verdict"]["verdict"] == expected, f"{why}: {result['verdict']} {r.stderr[-1500:]}"
    assert r.returncode == {"PASS": 0, "STALL": 1}[expected]
    assert result["l1"]["vfio_intx_fix"] is (vfio == "fixed")  # read from the module binary
    last = result["samples"][-1]
    with_l2 = consumer == "l2"
    if expected == "PASS":
        assert last["serviced"] >= 10 and last["l1"] >= last["serviced"]
        assert last["l2"] >= last["serviced"] if with_l2 else last["l2"] is None
    else:
        # The signature: L1's vfio-intx stops at exactly 1, L2 at 0 or 1; decided early.
        assert last["l1"] == 1 and last["serviced"] <= 1
        assert last["l2"] in (0, 1) if with_l2 else last["l2"] is None
        assert last["t"] < DURATION - 5 and "L1 vfio-intx stopped at 1" in r.stdout
    assert result["consumer"] == consumer and result["l0"]["command"]
    assert result["chain"]["l2_accel"] in (("kvm", "tcg") if with_l2 else ("",))
    logs = ("l1-console.log", "l1-qemu.log") + (("l2-console.log",) if with_l2 else ())
    for f in ("junit.xml", "timeline.svg", "timeline.png") + logs:
        assert (out / f).stat().st_size > 0, f
    assert qemu_processes_under(short_tmp) == []
    assert list((short_tmp / "intx-rig").iterdir()) == []

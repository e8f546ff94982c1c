"""A kernel with the fix PASSes however slowly its consumer unmasks. The rig pushes the next
byte once the consumer said it read the last; a byte that asserts while the source is still
masked is lost on QEMU's XIVE (re-sent on EOI, never on unmask), so a consumer that said so
before unmasking made a fixed kernel STALL on a loaded machine (seen in make test on pseries
and in the soak on PowerNV: docs/facts.md). Here the consumer waits 100 ms between servicing
and unmasking, five times the drive's push gap: it must still PASS on both XIVE machines.
(With the report before the unmask, this STALLed at the second byte: PQ=01, then LSI --A.)"""

import pytest
from conftest import load_result, nothing_left, run_rig

from rig.chain.reader import SLOW_UNMASK_ENV

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("rig_chain")]


@pytest.mark.parametrize("machine", ["pseries", "powernv"])
def test_a_slow_unmask_never_makes_a_fixed_kernel_stall(machine, rig_cache_dir, run_base, short_tmp):
    out = short_tmp / machine
    r = run_rig("run", "--arch", "ppc64", "--machine", machine, "--l1-vfio", "fixed", "--consumer", "userspace",
                "--duration", "30", "--pass-after", "30", "--out", str(out), cache=rig_cache_dir,
                env={"RIG_RUN_DIR": str(run_base.parent), SLOW_UNMASK_ENV: "100000"})
    result = load_result(out)
    assert result["verdict"]["verdict"] == "PASS", (result["verdict"], r.stderr[-2000:])
    assert result["verdict"]["stopped_at"]["serviced"] >= 30
    last = result["samples"][-1]
    assert last["serviced"] / last["t"] <= 10, "the consumer was not slowed: at most 10 unmasks a second"
    assert nothing_left(run_base)

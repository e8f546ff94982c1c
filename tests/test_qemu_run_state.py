"""QemuMachine's run state against a real QEMU: what the chain reads before a STALL
(rig.chain.verdict.unless_paused). No guest is needed: QEMU's machine 'none'."""

import pytest

from rig.chain.session import Session
from rig.core.progress import Progress
from rig.core.targets import profile
from rig.guests.machine import QemuMachine
from rig.host.rundir import RunDir

pytestmark = pytest.mark.integration


def test_run_state_follows_stop_and_cont(rig_cache_dir, run_base, tmp_path):
    qemu = Session(rig_cache_dir, progress=Progress(quiet=True)).qemu(profile("x86_64"))
    with RunDir("state") as rd, QemuMachine("l1", qemu, ["-M", "none", "-S"], rd, tmp_path) as m:
        m.launch()
        assert m.run_state() == "prelaunch"
        m.cmd("cont")
        assert m.run_state() == "running"
        m.cmd("stop")
        assert m.run_state() == "paused"

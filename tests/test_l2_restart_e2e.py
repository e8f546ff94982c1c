"""An L2 that hangs in boot is diagnosed, stopped and started once more, before the drive.

The hang is real: L2's QEMU is started paused (-S) the first time, so its init never prints
the ready line; the rig has to notice, ask that QEMU what it is doing, stop it, give the
device back to L1 and start L2 again, which then boots and passes interrupts.
"""

import argparse

import pytest
from conftest import nothing_left

from rig import chain as chain_module
from rig.chain import DriveConfig
from rig.cli import Session
from rig.l2 import L2Guest
from rig.run import ChainOptions, running_chain
from rig.targets import profile

pytestmark = pytest.mark.e2e


class FirstOneHangs(L2Guest):
    started = 0

    def __init__(self, l1, command, *rest):
        FirstOneHangs.started += 1
        super().__init__(l1, command + (["-S"] if FirstOneHangs.started == 1 else []), *rest)


def test_a_hung_l2_boot_is_diagnosed_and_restarted_once(rig_cache_dir, short_tmp, run_base, monkeypatch):
    monkeypatch.setattr(chain_module, "L2Guest", FirstOneHangs)
    args = argparse.Namespace(cache_dir=str(rig_cache_dir), refresh=False, quiet=False, qemu=None)
    out = short_tmp / "out"
    out.mkdir()
    opts = ChainOptions(device="pci-serial", l2_accel="kvm", l2_hang_s=20)
    with running_chain(Session(args), profile("x86_64"), out, opts, {}) as chain:
        assert FirstOneHangs.started == 2
        [hang] = chain.facts.l2_boot_hangs
        assert "did not appear on the console within 20 s" in hang
        assert "L2 QEMU status prelaunch" in hang and "vCPU at EIP=fff0" in hang, hang
        assert "EIP=0000fff0" in (out / "l2-registers.txt").read_text()
        assert (out / "l2-console-hung.log").exists() and (out / "l2-console.log").exists()
        # the hung QEMU is gone: one L2 QEMU in L1, the second one, holding the device
        pids = chain.l1.ssh.run("pidof qemu-system-x86_64").stdout.split()
        assert len(pids) == 1, pids
        verdict = chain.drive(DriveConfig(duration=5, min_serviced=5))
        assert verdict.verdict == "PASS", verdict.reason
    assert nothing_left(run_base)

"""An L2 whose boot fails is diagnosed, stopped and started again, before the drive.

The failures are real: an L2 QEMU started paused (-S) hangs (its init never prints the
ready line), on the first start; an L2 kernel with an init that does not exist panics and,
with -no-reboot, its QEMU exits, on every start until one has panicked (a start that hung
on its own before reaching init does not count). The rig has to notice, say why, give the
device back to L1 and start L2 again, which then boots and passes interrupts. (An L2
under KVM gets two more starts: the second start also hung, on its own, once in CI.)
"""

import pytest
from conftest import nothing_left

from rig.chain.session import Session
from rig.chain.setup import running_chain
from rig.core import timeouts
from rig.core.spec import DriveSpec, RunSpec
from rig.guests import l2 as l2_module
from rig.guests.l2 import L2Guest, failed_console_name

pytestmark = pytest.mark.e2e


def first_start_spoiled(spoil):
    """An L2Guest whose first instance runs spoil(command) instead of the command."""
    class FirstOneFails(L2Guest):
        started = 0

        def __init__(self, l1, command, *rest):
            FirstOneFails.started += 1
            super().__init__(l1, spoil(list(command)) if FirstOneFails.started == 1 else command, *rest)
    return FirstOneFails


def spoiled_until(spoil, seen: str):
    """An L2Guest whose starts run spoil(command) until the console of a failed one shows
    `seen`: an L2 under KVM in TCG sometimes spins early in boot on its own (the known hang,
    2 of 40 x86 runs), before the spoiled part is reached; the next start is spoiled again."""
    class FailsUntilSeen(L2Guest):
        started = 0

        def __init__(self, l1, command, console_log, out):
            FailsUntilSeen.started += 1
            earlier = [out / failed_console_name(n) for n in range(1, FailsUntilSeen.started)]
            done = any(seen in p.read_text(errors="replace") for p in earlier if p.exists())
            super().__init__(l1, command if done else spoil(list(command)), console_log, out)
    return FailsUntilSeen


def paused(command):
    return command + ["-S"]


def init_missing(command):
    i = command.index("-append") + 1
    command[i] += " rdinit=/no-such-init"
    return command


def chain_with(guest_class, monkeypatch, rig_cache_dir, out, hang_s: float):
    monkeypatch.setattr(l2_module, "L2Guest", guest_class)
    out.mkdir()
    # No snapshots: a chain restored with L2 running in it would never start L2 at all.
    spec = RunSpec(arch="x86_64", device="pci-serial", l2_accel="kvm", l2_hang_s=hang_s,
                   snapshot=False).validate()
    return running_chain(Session(rig_cache_dir), spec, out)


def assert_a_later_l2_serves(chain, out):
    assert l2_module.L2Guest.started == 1 + len(chain.facts.l2_boot_failures) >= 2
    assert (out / "l2-console-failed.log").exists() and (out / "l2-console.log").exists()
    # the failed QEMUs are gone: one L2 QEMU in L1, the last one, holding the device
    pids = chain.l1.ssh.run("pidof qemu-system-x86_64").stdout.split()
    assert len(pids) == 1, pids
    verdict = chain.drive(DriveSpec(duration=5, pass_after=10, min_serviced=5))
    assert verdict.outcome == "PASS", verdict.reason


def test_a_hung_l2_boot_is_diagnosed_and_restarted(rig_cache_dir, short_tmp, run_base, monkeypatch):
    out = short_tmp / "out"
    with chain_with(first_start_spoiled(paused), monkeypatch, rig_cache_dir, out, hang_s=20) as chain:
        failure = chain.facts.l2_boot_failures[0]
        assert "did not appear on the console within 20 s" in failure
        assert "L2 QEMU status prelaunch" in failure and "vCPU at EIP=fff0" in failure, failure
        assert "EIP=0000fff0" in (out / "l2-registers.txt").read_text()
        assert_a_later_l2_serves(chain, out)
    assert nothing_left(run_base)


def test_an_l2_that_panics_in_boot_is_restarted(rig_cache_dir, short_tmp, run_base, monkeypatch):
    out = short_tmp / "out"
    # The default hang limit: a panic ends L2's QEMU, which is seen at once; a short limit
    # made a slow panic (21 s on a loaded machine) look like a hang.
    with chain_with(spoiled_until(init_missing, "Kernel panic"), monkeypatch, rig_cache_dir, out,
                    hang_s=timeouts.L2_KVM_HANG_S) as chain:
        failures = chain.facts.l2_boot_failures
        panics = [f for f in failures if "QEMU exited with status 0 before the L2 init's ready line" in f]
        assert len(panics) == 1 and "Kernel panic" in panics[0], failures
        console = panics[0].rsplit("(its console: ", 1)[1].rstrip(")")
        assert "Kernel panic" in (out / console).read_text()
        assert_a_later_l2_serves(chain, out)
    assert nothing_left(run_base)

"""pytest plugin: the `rig_chain` fixture, a running L0 -> L1 -> L2 chain to write checks
against. Installed with the rig (entry point pytest11), so any test can use it:

    def test_my_check(rig_chain):
        print(rig_chain.l1.ssh.run("lspci -v").stdout)        # L1, over SSH
        print(rig_chain.l2_ssh.run("cat /proc/interrupts").stdout)  # L2, through L1
        verdict = rig_chain.drive(DriveConfig(duration=10))    # push bytes, count, judge
        assert verdict.verdict == "PASS"

Options: --rig-arch (x86_64|ppc64), --rig-ic, --rig-l2-accel, --rig-out DIR.
One chain per test module (booting one takes ~20-30 s on 2 cores under TCG).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest


def pytest_addoption(parser):
    group = parser.getgroup("intx-rig")
    group.addoption("--rig-arch", default="x86_64", help="arch of the rig_chain fixture")
    group.addoption("--rig-ic", default=None, help="L0 interrupt controller (ppc64: xive|xics)")
    group.addoption("--rig-l2-accel", default="auto", choices=("auto", "kvm", "tcg"))
    group.addoption("--rig-out", default=None, help="where rig_chain keeps its logs")


@pytest.fixture(scope="module")
def rig_chain(request, tmp_path_factory):
    from .cli import Session
    from .run import ChainOptions, running_chain
    from .targets import profile

    cfg = request.config
    args = argparse.Namespace(cache_dir=None, refresh=False, quiet=False, qemu=None)
    out = Path(cfg.getoption("--rig-out") or tmp_path_factory.mktemp("rig_chain"))
    out.mkdir(parents=True, exist_ok=True)
    opts = ChainOptions(ic=cfg.getoption("--rig-ic"), l2_accel=cfg.getoption("--rig-l2-accel"))
    with running_chain(Session(args), profile(cfg.getoption("--rig-arch")), out, opts, {}) as chain:
        yield chain

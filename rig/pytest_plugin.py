"""pytest plugin: the `rig_chain` fixture, a running L0 -> L1 -> L2 chain to write checks
against. Installed with the rig (entry point pytest11), so any test can use it:

    def test_my_check(rig_chain):
        print(rig_chain.l1.ssh.run("lspci -v").stdout)        # L1, over SSH
        print(rig_chain.l2_ssh.run("cat /proc/interrupts").stdout)  # L2, through L1
        verdict = rig_chain.drive(DriveSpec(duration=10))    # rig.chain.drive: push, count, judge
        assert verdict.outcome == "PASS"

Options: --rig-arch (x86_64|ppc64), --rig-machine (ppc64: pseries|powernv), --rig-ic,
--rig-l2-accel, --rig-out DIR.
One chain per test module (booting one takes ~20-30 s on 2 cores under TCG).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from rig.core.errors import SpecError, UserError
from rig.core.spec import ACCELS, RunSpec

if TYPE_CHECKING:     # the chain's modules load when the fixture is used, not with every pytest
    from rig.chain.chain import Chain


# The spec's fields as this plugin's options spell them (rig.core.errors.SpecError).
SPELLING = {"--arch": "--rig-arch", "--machine": "--rig-machine", "--ic": "--rig-ic",
            "--l2-accel": "--rig-l2-accel", "--out": "--rig-out"}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("intx-rig")
    group.addoption("--rig-arch", default="x86_64", help="arch of the rig_chain fixture")
    group.addoption("--rig-machine", default=None, help="L1's machine (default: the arch's first)")
    group.addoption("--rig-ic", default=None, help="L0 interrupt controller (pseries: xive|xics)")
    group.addoption("--rig-l2-accel", default="auto", choices=ACCELS)
    group.addoption("--rig-out", default=None, help="where rig_chain keeps its logs")


@pytest.fixture(scope="module")
def rig_chain(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    from rig.chain.session import Session
    from rig.chain.setup import running_chain
    from rig.core.logs import LogFile

    cfg = request.config
    out = Path(cfg.getoption("--rig-out") or tmp_path_factory.mktemp("rig_chain"))
    try:
        spec = RunSpec(arch=cfg.getoption("--rig-arch"), machine=cfg.getoption("--rig-machine"),
                       ic=cfg.getoption("--rig-ic"),
                       l2_accel=cfg.getoption("--rig-l2-accel"), out=out).validate()
    except SpecError as e:
        raise pytest.UsageError(f"rig: error: {e.spelled_as(SPELLING)}") from e
    except UserError as e:
        raise pytest.UsageError(f"rig: error: {e}") from e
    out.mkdir(parents=True, exist_ok=True)
    with LogFile(out), running_chain(Session(), spec, out) as chain:
        yield chain

"""A failure nobody foresaw is an ERROR with its cause and its log, never a traceback and
never a STALL; the result files are written all the same."""

import pytest
from conftest import load_result

from rig.commands.run_pipeline import run
from rig.core.cache import Cache
from rig.core.progress import Progress
from rig.core.spec import RunSpec

pytestmark = pytest.mark.unit


class BrokenSession:
    """Stands in for the session the chain is built from: its first use fails. Its cache is
    real (an empty one): the reproducer records the package locks it holds."""
    progress = Progress(quiet=True)

    def __init__(self, cache_root):
        self.cache = Cache(cache_root)

    def qemu(self, prof):
        raise RuntimeError("the rig's own bug")


def test_an_unexpected_exception_is_an_error_with_its_cause_and_log(tmp_path, capsys):
    out = tmp_path / "out"
    spec = RunSpec(arch="ppc64", out=out).validate()
    assert run(BrokenSession(tmp_path / "cache"), spec, None) == 125
    result = load_result(out)
    assert result["verdict"]["verdict"] == "ERROR"
    assert "unexpected RuntimeError in the rig: the rig's own bug" in result["verdict"]["reason"]
    assert str(out / "rig.log") in result["verdict"]["reason"]
    log = (out / "rig.log").read_text()
    assert "Traceback" in log and "RuntimeError: the rig's own bug" in log
    assert "Traceback" not in capsys.readouterr().err
    assert (out / "junit.xml").exists() and (out / "timeline.png").exists()
    assert result["arch"] == "ppc64" and result["chain"] is None and result["l0"] is None


def test_confirm_stops_at_the_first_error_and_gives_no_verdict(tmp_path, capsys):
    """--confirm N: each run in its own directory; one that cannot give a verdict ends it."""
    out = tmp_path / "out"
    spec = RunSpec(arch="ppc64", out=out, confirm=3).validate()
    assert run(BrokenSession(tmp_path / "cache"), spec, None) == 125
    assert (out / "confirm-1" / "result.json").exists() and not (out / "confirm-2").exists()
    assert "run 1 ended in ERROR" in capsys.readouterr().out


def test_an_error_after_the_first_stages_keeps_what_they_returned(tmp_path, monkeypatch):
    """The L0, image and device stages ran, then L1 failed: result.json's ERROR still says
    which QEMU, kernel and device the run had (rig.chain.setup.ChainFailed carries them)."""
    from types import SimpleNamespace

    from rig.chain import setup
    from rig.chain.facts import L0Facts, L1Facts
    from rig.core.errors import InfraError

    l0 = SimpleNamespace(describe=lambda: "L0", accel=SimpleNamespace(plan=None), qemu=None,
                         facts=lambda: L0Facts("qemu-system-ppc64 (test)", "tcg", "no KVM here"))
    img = SimpleNamespace(image=None, describe_fix=lambda: "fix state",
                          facts=lambda vfio: L1Facts("6.12.95-test", None, vfio, [], False))

    def l1_never_boots(*args):
        raise InfraError("l1: the console did not appear within 240 s")

    monkeypatch.setattr(setup, "start_l0", lambda s, mach: l0)
    monkeypatch.setattr(setup, "l1_image", lambda s, spec, kernel: img)
    monkeypatch.setattr(setup, "choose_device", lambda *a: setup.DeviceChoice("pci-serial", "default on pseries"))
    monkeypatch.setattr(setup, "chain_on", l1_never_boots)
    out = tmp_path / "out"
    assert run(BrokenSession(tmp_path / "cache"), RunSpec(arch="ppc64", out=out).validate(), None) == 125
    result = load_result(out)
    assert result["verdict"] == {"verdict": "ERROR", "reason": "l1: the console did not appear within 240 s",
                                 "stopped_at": {}}
    assert result["l0"]["qemu"] == "qemu-system-ppc64 (test)" and result["l1"]["kernel"] == "6.12.95-test"
    assert (result["device"], result["device_reason"], result["chain"]) == ("pci-serial", "default on pseries", None)


def test_a_timeline_that_cannot_be_drawn_is_said_and_the_result_stands(tmp_path, capsys, monkeypatch):
    """The pictures are drawn beside the teardown (rig.reports.drawing): what drawing raises
    comes back when they are joined, is said in one line and logged, and the result files
    and the exit status are those of the run."""
    import rig.reports.timeline as timeline

    def broken(*_args, **_kwargs):
        raise ValueError("no room on the canvas")
    monkeypatch.setattr(timeline, "write_timeline", broken)
    out = tmp_path / "out"
    assert run(BrokenSession(tmp_path / "cache"), RunSpec(arch="ppc64", out=out).validate(), None) == 125
    assert load_result(out)["verdict"]["verdict"] == "ERROR"
    said = capsys.readouterr().out
    assert "the timeline was not drawn: ValueError: no room on the canvas" in said
    assert "ValueError: no room on the canvas" in (out / "rig.log").read_text()

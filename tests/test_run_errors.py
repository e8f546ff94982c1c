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

"""Bad input: one line on stderr, exit status 2, never a traceback."""

import pytest
from conftest import run_rig

pytestmark = pytest.mark.unit


def assert_one_line_error(r, pattern):
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in r.stderr
    assert lines[-1].startswith("rig: error:") and pattern in lines[-1], r.stderr


def test_unwritable_cache_dir(tmp_path):
    (tmp_path / "f").write_text("")
    r = run_rig("build", "--arch", "x86_64", cache=tmp_path / "f" / "cache")
    assert_one_line_error(r, "not writable")


def test_no_network_to_the_archive_names_what_failed(tmp_path):
    # A closed local port stands in for an unreachable mirror: apt fails at once.
    r = run_rig("build", "--arch", "ppc64", cache=tmp_path / "c",
                env={"RIG_DEBIAN_MIRROR": "http://127.0.0.1:9/debian"}, timeout=300)
    assert_one_line_error(r, "cannot fetch the Debian package index")
    assert "ppc64el" in r.stderr

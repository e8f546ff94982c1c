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


def test_the_pytest_plugin_names_its_own_options_in_spec_errors(tmp_path):
    """The spec says which field is wrong; pytest's front end spells it --rig-ic, not --ic."""
    import subprocess
    import sys

    from conftest import ROOT
    (tmp_path / "test_x.py").write_text("def test_x(rig_chain):\n    pass\n")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "--rig-arch", "ppc64",
                        "--rig-ic", "ioapic", str(tmp_path / "test_x.py")],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode != 0 and "rig: error: --rig-ic ioapic: use one of xive, xics" in r.stdout + r.stderr, \
        r.stdout[-800:] + r.stderr[-800:]

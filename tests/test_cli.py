"""Bad input: one line on stderr, exit status 2, never a traceback."""

import pytest

from conftest import run_rig

pytestmark = pytest.mark.unit


def assert_one_line_error(r, pattern):
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in r.stderr
    assert lines[-1].startswith("rig: error:") and pattern in lines[-1], r.stderr


def test_unknown_arch(tmp_path):
    assert_one_line_error(run_rig("boot", "--arch", "arm64", cache=tmp_path), "unknown arch 'arm64'")


def test_missing_kernel(tmp_path):
    r = run_rig("boot", "--arch", "x86_64", "--kernel", str(tmp_path / "nope"), cache=tmp_path)
    assert_one_line_error(r, "no such file")


def test_wrong_arch_kernel(tmp_path):
    bz = bytearray(0x400)
    bz[0x202:0x206] = b"HdrS"
    (tmp_path / "bzImage").write_bytes(bytes(bz))
    r = run_rig("boot", "--arch", "ppc64", "--kernel", str(tmp_path / "bzImage"), cache=tmp_path)
    assert_one_line_error(r, "not a ppc64 kernel")


def test_unwritable_cache_dir(tmp_path):
    (tmp_path / "f").write_text("")
    r = run_rig("build", "--arch", "x86_64", cache=tmp_path / "f" / "cache")
    assert_one_line_error(r, "not writable")


def test_qemu_too_old(tmp_path):
    fake = tmp_path / "qemu"
    fake.write_text("#!/bin/sh\necho 'QEMU emulator version 5.2.0'\n")
    fake.chmod(0o755)
    r = run_rig("boot", "--arch", "x86_64", "--qemu", str(fake), cache=tmp_path)
    assert_one_line_error(r, "too old")


def test_no_network_to_the_archive_names_what_failed(tmp_path):
    # A closed local port stands in for an unreachable mirror: apt fails at once.
    r = run_rig("build", "--arch", "ppc64", cache=tmp_path / "c",
                env={"RIG_DEBIAN_MIRROR": "http://127.0.0.1:9/debian"}, timeout=300)
    assert_one_line_error(r, "cannot fetch the Debian package index")
    assert "ppc64el" in r.stderr


def test_bad_option_is_usage_error(tmp_path):
    r = run_rig("boot", "--arch", "x86_64", "--accel", "warp", cache=tmp_path)
    assert r.returncode == 2 and "invalid choice" in r.stderr


def test_wrong_interrupt_controller_for_the_arch(tmp_path):
    r = run_rig("run", "--arch", "x86_64", "--ic", "xive", "--out", str(tmp_path / "out"), cache=tmp_path)
    assert_one_line_error(r, "--ic xive does not apply to x86_64")
    assert not (tmp_path / "out").exists()

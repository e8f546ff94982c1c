import pytest

from rig.core.errors import UserError
from rig.core.targets import PPC64
from rig.host.accel import _EXIT_CODE, choose_accel, probe_bios
from rig.host.qemu import QemuBinary, explicit_qemu, parse_version

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("text, version", [
    ("QEMU emulator version 11.1.3 (Debian 1:11.1.3+ds-1~bpo13+1)", (11, 1, 3)),
    ("QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u18)", (7, 2, 19)),
    ("QEMU emulator version 10.1", (10, 1, 0)),
])
def test_parse_version(text, version):
    assert parse_version(text) == version


def test_too_old_qemu_is_a_user_error(tmp_path):
    fake = tmp_path / "qemu-system-ppc64"
    fake.write_text("#!/bin/sh\necho 'QEMU emulator version 6.2.0'\n")
    fake.chmod(0o755)
    q = explicit_qemu(str(fake))
    assert q.version == (6, 2, 0)
    with pytest.raises(UserError, match=r"too old .*needs QEMU >= 10\.1"):
        q.require((10, 1), "vfio-user")
    with pytest.raises(UserError, match="not an executable"):
        explicit_qemu(str(tmp_path / "missing"))


def test_probe_bios_puts_the_exit_write_at_the_reset_vector():
    bios = probe_bios()
    assert len(bios) == 65536
    assert bios[0xFFF0:0xFFF4] == bytes([0xB0, 0x31, 0xE6, 0xF4])
    assert _EXIT_CODE == 99


def test_foreign_arch_guest_gets_tcg_and_says_why():
    accel = choose_accel(PPC64, QemuBinary(path="/nonexistent", source="test"))
    assert accel.name == "tcg" and "ppc64 guest on a" in accel.reason


def test_a_qemu_given_by_a_bare_name_runs_the_file_that_was_checked(tmp_path, monkeypatch):
    """`--qemu ./qemu` is "qemu" to pathlib: run as such, PATH would pick another program."""
    prog = tmp_path / "qemu"
    prog.write_text("#!/bin/sh\necho 'QEMU emulator version 11.1.3'\n")
    prog.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    q = explicit_qemu("./qemu")
    assert q.path == prog and q.argv()[0] == str(prog)

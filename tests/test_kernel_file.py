import struct

import pytest

from rig.core.errors import UserError
from rig.core.targets import PPC64, X86_64
from rig.kernel.image_file import check_kernel, identify

pytestmark = pytest.mark.unit

EM_X86_64, EM_PPC64, EM_AARCH64 = 62, 21, 183


def elf_header(machine: int, little: bool = True) -> bytes:
    """A minimal 64-bit ELF header (no sections), enough for the arch check."""
    e = "<" if little else ">"
    ident = b"\x7fELF" + bytes([2, 1 if little else 2, 1]) + b"\0" * 9
    return ident + struct.pack(e + "HHIQQQIHHHHHH", 2, machine, 1, 0, 0, 0, 0, 64, 0, 0, 64, 0, 0)


def write(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_elf_and_bzimage_are_recognised(tmp_path):
    assert identify(write(tmp_path, "vmlinux", elf_header(EM_PPC64))) == "ppc64"
    assert identify(write(tmp_path, "vmlinux64", elf_header(EM_X86_64))) == "x86_64"
    bz = bytearray(0x400)
    bz[0x202:0x206] = b"HdrS"
    assert identify(write(tmp_path, "bzImage", bytes(bz))) == "x86_64"


def test_wrong_arch_is_one_clear_error(tmp_path):
    p = write(tmp_path, "vmlinux", elf_header(EM_PPC64))
    with pytest.raises(UserError, match="not a x86_64 kernel.*--arch ppc64"):
        check_kernel(p, X86_64)
    arm = write(tmp_path, "Image", elf_header(EM_AARCH64))
    with pytest.raises(UserError, match="EM_AARCH64"):
        check_kernel(arm, PPC64)
    be = write(tmp_path, "vmlinux-be", elf_header(EM_PPC64, little=False))
    with pytest.raises(UserError, match="big-endian"):
        check_kernel(be, PPC64)


def test_missing_and_unknown_files(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        check_kernel(tmp_path / "nope", X86_64)
    with pytest.raises(UserError, match="not a kernel image"):
        check_kernel(write(tmp_path, "junk", b"hello" * 100), X86_64)
    with pytest.raises(UserError, match="gzip"):
        check_kernel(write(tmp_path, "vmlinuz.gz", b"\x1f\x8b" + b"\0" * 600), PPC64)
    assert check_kernel(write(tmp_path, "ok", elf_header(EM_PPC64)), PPC64).name == "ok"

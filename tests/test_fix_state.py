"""The INTx fix read from binaries: a module's imports, and, with vfio built in, the direct
call to irq_modify_status in vfio-pci's code of a vmlinux, decoded per arch. The ELF files
are made here, small, with the layout a linker gives (a PT_LOAD segment, .symtab, .strtab)."""

import struct

import pytest

from rig.kernel.fix_state import module_has_fix, ppc64_call_targets, vmlinux_has_fix, x86_call_targets

pytestmark = pytest.mark.unit

BASE = 0xFFFFFFFF81000000
EM = {"x86": 62, "ppc64": 21}


def elf(machine: int, code: bytes, symbols: list[tuple[str, int, int, int]], etype: int = 2) -> bytes:
    """An ELF64 little-endian file: code loaded at BASE, symbols (name, value, size, shndx) as FUNCs."""
    strtab = b"\0" + b"".join(n.encode() + b"\0" for n, *_ in symbols)
    syms = bytes(24)
    off = 1
    for name, value, size, shndx in symbols:
        syms += struct.pack("<IBBHQQ", off, 0x12, 0, shndx, value, size)
        off += len(name) + 1
    shstr = b"\0.symtab\0.strtab\0.shstrtab\0"
    code_off = 64 + 56
    sym_off = code_off + len(code)
    str_off = sym_off + len(syms)
    shs_off = str_off + len(strtab)
    sh_off = shs_off + len(shstr)
    header = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8) + struct.pack(
        "<HHIQQQIHHHHHH", etype, machine, 1, 0, 64, sh_off, 0, 64, 56, 1, 64, 4, 3)
    phdr = struct.pack("<IIQQQQQQ", 1, 5, code_off, BASE, BASE, len(code), len(code), 0x1000)
    sections = bytes(64) + struct.pack("<IIQQQQIIQQ", 1, 2, 0, 0, sym_off, len(syms), 2, 1, 8, 24)
    sections += struct.pack("<IIQQQQIIQQ", 9, 3, 0, 0, str_off, len(strtab), 0, 0, 1, 0)
    sections += struct.pack("<IIQQQQIIQQ", 17, 3, 0, 0, shs_off, len(shstr), 0, 0, 1, 0)
    return header + phdr + code + syms + strtab + shstr + sections


def x86_call(at: int, to: int) -> bytes:
    return b"\xe8" + struct.pack("<i", to - (at + 5))


def ppc_bl(at: int, to: int) -> bytes:
    return struct.pack("<I", 0x48000001 | ((to - at) & 0x03FFFFFC))


def vmlinux(tmp_path, arch: str, calls: bool, names=("vfio_intx_enable",)):
    target = BASE + 0x100
    if arch == "x86":
        body = b"\x90" + (x86_call(BASE + 1, target) if calls else x86_call(BASE + 1, BASE + 0x80)) + b"\xc3"
    else:   # ELFv2: a call from the same TOC lands on the local entry point, 8 bytes in
        body = b"\x00\x00\x00\x60" + (ppc_bl(BASE + 4, target + 8) if calls else ppc_bl(BASE + 4, BASE + 0x80))
    code = body.ljust(0x110, b"\0")
    syms = [(n, BASE, len(body), 1) for n in names] + [("irq_modify_status", target, 16, 1)]
    path = tmp_path / f"vmlinux-{arch}"
    path.write_bytes(elf(EM[arch], code, syms))
    return path


@pytest.mark.parametrize("arch", ["x86", "ppc64"])
def test_a_built_in_vfio_with_the_fix_calls_irq_modify_status(tmp_path, arch):
    assert vmlinux_has_fix(vmlinux(tmp_path, arch, calls=True)) is True
    assert vmlinux_has_fix(vmlinux(tmp_path, arch, calls=False)) is False


def test_a_vmlinux_without_vfio_built_in_says_nothing(tmp_path):
    assert vmlinux_has_fix(vmlinux(tmp_path, "x86", True, names=("pci_enable_device",))) is None
    (tmp_path / "junk").write_bytes(b"not an ELF")
    assert vmlinux_has_fix(tmp_path / "junk") is None


def test_call_decoders():
    assert list(x86_call_targets(x86_call(0x1000, 0x900), 0x1000)) == [0x900]
    assert list(ppc64_call_targets(ppc_bl(0x2000, 0x1000), 0x2000)) == [0x1000]       # backwards
    assert list(ppc64_call_targets(struct.pack("<I", 0x48000000 | 0x100), 0)) == []    # b, not bl


def test_a_module_with_the_fix_imports_irq_modify_status():
    fixed = elf(EM["x86"], b"", [("irq_modify_status", 0, 0, 0)], etype=1)   # undefined: imported
    unfixed = elf(EM["x86"], b"", [("enable_irq", 0, 0, 0)], etype=1)
    assert module_has_fix(fixed) and not module_has_fix(unfixed)

"""Whether a kernel binary has the vfio INTx fix (upstream 8b9f128947dd), read from the
binary itself, never from a version number.

With the fix, vfio_intx_enable() calls irq_set_status_flags(irq, IRQ_DISABLE_UNLAZY), an
inline wrapper of irq_modify_status(). In a module (vfio-pci-core.ko) that is an undefined
symbol the module imports. In a vmlinux with vfio built in the call is resolved: the rig
looks for a direct call to irq_modify_status in the code of vfio-pci's own functions
(vfio_pci_*, vfio_intx_*, where the caller may be inlined), decoding the arch's call
instruction: x86 `call rel32`, POWER `bl`. No other vfio-pci code calls it.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

TARGET = "irq_modify_status"
CALLERS = ("vfio_pci_", "vfio_intx_")
# Where a direct call may land relative to the symbol: x86 kernels with call padding put
# 16 bytes of padding (__pfx_) before it; POWER's ELFv2 local entry point is 8 bytes in.
LANDING = {"EM_X86_64": (-16, 0), "EM_PPC64": (0, 8)}


def module_has_fix(ko: bytes) -> bool:
    """A vfio-pci-core module with the fix imports irq_modify_status."""
    symtab = ELFFile(io.BytesIO(ko)).get_section_by_name(".symtab")
    if not isinstance(symtab, SymbolTableSection):
        return False
    return any(s.name == TARGET and s["st_shndx"] == "SHN_UNDEF" for s in symtab.iter_symbols())


def x86_call_targets(code: bytes, base: int) -> Iterator[int]:
    """Targets of every `call rel32` (E8) in code loaded at base (a byte scan: the exact
    target address makes a false match practically impossible)."""
    for i in range(len(code) - 4):
        if code[i] == 0xE8:
            (rel,) = struct.unpack_from("<i", code, i + 1)
            yield base + i + 5 + rel


def ppc64_call_targets(code: bytes, base: int, little_endian: bool = True) -> Iterator[int]:
    """Targets of every `bl` (primary opcode 18, AA=0, LK=1) in code loaded at base."""
    fmt = "<I" if little_endian else ">I"
    for i in range(0, len(code) - 3, 4):
        (word,) = struct.unpack_from(fmt, code, i)
        if word & 0xFC000003 == 0x48000001:
            off = word & 0x03FFFFFC
            if off & 0x02000000:
                off -= 0x04000000
            yield base + i + off


def vmlinux_has_fix(vmlinux: Path) -> bool | None:
    """None when vfio-pci is not built into this vmlinux (or it cannot be read). Read as a
    stream: a vmlinux with debug information is hundreds of MB."""
    try:
        with open(vmlinux, "rb") as f:
            return _vmlinux_has_fix(ELFFile(f))
    except (ELFError, OSError, ValueError, struct.error):
        return None


def _vmlinux_has_fix(elf: ELFFile) -> bool | None:
    symtab = elf.get_section_by_name(".symtab")
    machine = elf["e_machine"]
    if not isinstance(symtab, SymbolTableSection) or machine not in LANDING:
        return None
    funcs = [s for s in symtab.iter_symbols() if s["st_info"]["type"] == "STT_FUNC"]
    target = next((s["st_value"] for s in funcs if s.name == TARGET), None)
    callers = [s for s in funcs if s.name.startswith(CALLERS) and s["st_size"]]
    if target is None or not any(s.name.startswith("vfio_intx_") for s in callers):
        return None     # vfio-pci is not built in: its module says (module_has_fix)
    low, high = target + LANDING[machine][0], target + LANDING[machine][1]
    for s in callers:
        code, base = _code(elf, s["st_value"], s["st_size"])
        calls = x86_call_targets(code, base) if machine == "EM_X86_64" else \
            ppc64_call_targets(code, base, elf.little_endian)
        if any(low <= t <= high for t in calls):
            return True
    return False


def _code(elf: ELFFile, addr: int, size: int) -> tuple[bytes, int]:
    for seg in elf.iter_segments():
        start, end = seg["p_vaddr"], seg["p_vaddr"] + seg["p_filesz"]
        if seg["p_type"] == "PT_LOAD" and start <= addr < end:
            off = addr - start
            return seg.data()[off:off + size], addr
    return b"", addr

"""What architecture a kernel file is for, read from its header, before anything boots it."""

from __future__ import annotations

from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from rig.core.errors import UserError
from rig.core.targets import PROFILES, TargetProfile

# x86 bzImage: "HdrS" at offset 0x202 of the real-mode header.
BZIMAGE_MAGIC_OFFSET = 0x202


def identify(path: Path) -> str:
    """The profile name (x86_64, ppc64) a kernel image boots on, or a description of it."""
    with open(path, "rb") as f:
        head = f.read(0x210)
    if head[:4] == b"\x7fELF":
        try:
            with open(path, "rb") as f:
                elf = ELFFile(f)
                machine, little = elf["e_machine"], elf.little_endian
        except ELFError as e:
            return f"a damaged ELF file ({e})"
        for p in PROFILES.values():
            # Only little-endian ppc64 (ppc64el) is supported: pseries LE guests.
            if machine == p.elf_machine and little:
                return p.name
        return f"an ELF kernel for {machine}{'' if little else ' big-endian'}"
    if head[BZIMAGE_MAGIC_OFFSET:BZIMAGE_MAGIC_OFFSET + 4] == b"HdrS":
        return "x86_64"
    if head[:2] == b"\x1f\x8b":
        return "a gzip-compressed file (pass the uncompressed vmlinux)"
    return "not a kernel image this rig knows (ELF vmlinux or x86 bzImage)"


def check_kernel(path: str | Path, profile: TargetProfile) -> Path:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"kernel {path}: no such file")
    try:
        what = identify(p)
    except OSError as e:
        raise UserError(f"kernel {path}: cannot read it ({e.strerror})") from e
    if what != profile.name:
        raise UserError(f"kernel {path} is {what}, not a {profile.name} kernel: "
                        f"pass a {profile.name} kernel or --arch {what if what in PROFILES else '...'}")
    return p

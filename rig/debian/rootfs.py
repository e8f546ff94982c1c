"""Working with unpacked Debian trees: symlinks, shared-library closures, copying.

A guest root is assembled from a staging tree (all packages unpacked) by taking only the
programs it needs and the libraries their ELF headers name, like initramfs-tools'
copy_exec, but without running any foreign-arch code.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile


def relativize_absolute_symlinks(root: Path) -> None:
    """Point absolute symlinks (/usr/share/seabios/...) inside root, so root can live anywhere."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            if p.is_symlink():
                target = os.readlink(p)
                if target.startswith("/"):
                    rel = os.path.relpath(root / target.lstrip("/"), p.parent)
                    p.unlink()
                    p.symlink_to(rel)


def resolve_in_root(root: Path, path: str, depth: int = 0) -> Path:
    """Path of `path` (absolute inside root) after following symlinks inside root."""
    parts = Path(path.lstrip("/")).parts
    cur = root
    for i, part in enumerate(parts):
        nxt = cur / part
        if nxt.is_symlink() and depth < 40:
            target = os.readlink(nxt)
            base = "/" if target.startswith("/") else "/" + str(cur.relative_to(root))
            rest = "/".join(parts[i + 1:])
            joined = os.path.normpath(os.path.join(base, target, rest))
            return resolve_in_root(root, joined, depth + 1)
        cur = nxt
    return cur


def elf_info(path: Path) -> tuple[str | None, list[str]]:
    """(interpreter, DT_NEEDED names) of an ELF file; (None, []) for anything else."""
    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            interp = None
            for seg in elf.iter_segments():
                if seg.header.p_type == "PT_INTERP":
                    interp = seg.get_interp_name()  # type: ignore[attr-defined]  # an InterpSegment
            needed = []
            for sec in elf.iter_sections():
                if isinstance(sec, DynamicSection):
                    needed += [t.needed for t in sec.iter_tags()  # type: ignore[attr-defined]
                               if t.entry.d_tag == "DT_NEEDED"]
            return interp, needed
    except (ELFError, OSError, ValueError):
        return None, []


def library_dirs(triplet: str) -> list[str]:
    return [f"/usr/lib/{triplet}", f"/lib/{triplet}", "/usr/lib", "/lib", "/usr/lib64", "/lib64"]


def elf_closure(root: Path, programs: list[str], triplet: str) -> set[str]:
    """Paths (inside root) of programs, their interpreter and every library they need."""
    todo, seen = list(programs), set()
    dirs = library_dirs(triplet)
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        real = resolve_in_root(root, p)
        if not real.exists():
            raise FileNotFoundError(f"{p} is not in the unpacked packages")
        seen.add(p)
        interp, needed = elf_info(real)
        if interp:
            todo.append(interp)
        for lib in needed:
            hit = next((f"{d}/{lib}" for d in dirs if resolve_in_root(root, f"{d}/{lib}").exists()), None)
            if hit is None:
                raise FileNotFoundError(f"{lib}, needed by {p}, is not in the unpacked packages")
            todo.append(hit)
    return seen


def copy_into(src_root: Path, dst_root: Path, path: str) -> None:
    """Copy one path from src_root to the same place in dst_root, symlinks as symlinks
    and their targets too (so /lib64/ld-linux... -> ../lib/... keeps working)."""
    src = src_root / path.lstrip("/")
    dst = dst_root / path.lstrip("/")
    if dst.exists() or dst.is_symlink():
        return
    parent_real = resolve_in_root(src_root, str(Path(path).parent))
    if parent_real != src.parent:  # a symlinked directory on the way (merged /usr)
        copy_into(src_root, dst_root, "/" + str(parent_real.relative_to(src_root) / src.name))
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not dst.exists():
            dst.symlink_to(os.path.relpath(dst_root / parent_real.relative_to(src_root) / src.name,
                                           dst.parent))
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_symlink():
        target = os.readlink(src)
        dst.symlink_to(target)
        abs_target = target if target.startswith("/") else os.path.normpath(
            os.path.join(str(Path(path).parent), target))
        copy_into(src_root, dst_root, abs_target)
    elif src.is_dir():
        shutil.copytree(src, dst, symlinks=True)
    else:
        shutil.copy2(src, dst)

"""Kernel modules for a guest: the named ones and what they depend on, uncompressed,
with a modules.dep written here (no depmod, no foreign-arch code run)."""

from __future__ import annotations

import gzip
import io
import lzma
import shutil
from pathlib import Path

import zstandard
from elftools.elf.elffile import ELFFile

from rig.core.errors import UserError


def module_name(filename: str) -> str:
    """The kernel's name of a module file: vfio-pci.ko.xz -> vfio_pci."""
    return filename.split(".ko")[0].replace("-", "_")


def read_module(path: Path) -> bytes:
    """A module file's ELF, however the kernel's build compressed it: not at all, xz
    (Debian), gzip, or zstd (Ubuntu, Fedora). The guest gets it uncompressed."""
    data = path.read_bytes()
    try:
        if path.name.endswith(".xz"):
            return lzma.decompress(data)
        if path.name.endswith(".gz"):
            return gzip.decompress(data)
        if path.name.endswith(".zst"):
            return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
    except (lzma.LZMAError, OSError, EOFError, zstandard.ZstdError) as e:
        raise UserError(f"module {path}: cannot decompress it ({e})") from e
    return data


def modinfo(ko: bytes) -> dict[str, list[str]]:
    """The .modinfo section of a module: key -> values (depends, vermagic, ...)."""
    elf = ELFFile(io.BytesIO(ko))
    sec = elf.get_section_by_name(".modinfo")
    info: dict[str, list[str]] = {}
    if sec is not None:
        for entry in sec.data().split(b"\0"):
            if b"=" in entry:
                k, _, v = entry.decode(errors="replace").partition("=")
                info.setdefault(k, []).append(v)
    return info


class ModuleTree:
    """The modules of one kernel version, as unpacked from its package."""

    def __init__(self, moddir: Path):
        self.moddir = moddir
        self.files = {module_name(p.name): p for p in moddir.rglob("*.ko*")}
        builtin = moddir / "modules.builtin"
        self.builtin = {module_name(Path(line).name) for line in
                        builtin.read_text().split()} if builtin.exists() else set()

    def available(self, name: str) -> bool:
        n = module_name(name)
        return n in self.files or n in self.builtin

    def closure(self, names: list[str]) -> dict[str, tuple[Path, bytes, list[str]]]:
        """name -> (file, uncompressed module, dependency names), for names and their deps."""
        out: dict[str, tuple[Path, bytes, list[str]]] = {}
        todo = [n.replace("-", "_") for n in names]
        while todo:
            n = todo.pop()
            if n in out or n in self.builtin:
                continue
            if n not in self.files:
                raise UserError(f"kernel module {n} is neither built in nor in {self.moddir}")
            ko = read_module(self.files[n])
            deps = [module_name(d) for d in ",".join(modinfo(ko).get("depends", [""])).split(",") if d]
            out[n] = (self.files[n], ko, deps)
            todo += deps
        return out

    def install(self, names: list[str], dest_moddir: Path) -> list[str]:
        """Write the closure of names into dest_moddir with modules.dep; return what was loaded."""
        mods = self.closure(names)
        rel = {}
        for n, (path, ko, _) in mods.items():
            r = str(path.relative_to(self.moddir)).rsplit(".ko", 1)[0] + ".ko"
            rel[n] = r
            (dest_moddir / r).parent.mkdir(parents=True, exist_ok=True)
            (dest_moddir / r).write_bytes(ko)
        lines = []
        for n in sorted(mods):
            lines.append(f"{rel[n]}: " + " ".join(rel[d] for d in _deps_in_order(n, mods)))
        (dest_moddir / "modules.dep").write_text("\n".join(lines) + "\n")
        for f in ("modules.builtin", "modules.order", "modules.builtin.modinfo"):
            if (self.moddir / f).exists():
                shutil.copy2(self.moddir / f, dest_moddir / f)
        return sorted(mods)  # kernel names (underscores) of the modules written


def _deps_in_order(name: str, mods: dict) -> list[str]:
    """All (transitive) dependencies of name, each after its own dependencies."""
    order: list[str] = []

    def visit(n: str) -> None:
        for d in mods[n][2]:
            if d in mods and d not in order:
                visit(d)
                order.append(d)
    visit(name)
    # modules.dep lists the closest dependency first: modprobe loads from the end.
    return list(reversed(order))

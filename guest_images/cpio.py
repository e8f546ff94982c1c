"""A newc cpio writer: the format of a Linux initramfs.

Written here rather than with cpio(1) so device nodes (/dev/console) can be put in the
archive without root, ownership is always root:root, and the output is reproducible
(fixed mtimes, sorted entries).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

TRAILER = "TRAILER!!!"


class CpioWriter:
    def __init__(self, out: BinaryIO, mtime: int = 0):
        self.out = out
        self.mtime = mtime
        self.ino = 1000
        self.written: set[str] = set()

    def _header(self, name: str, mode: int, size: int, rdev: tuple[int, int] = (0, 0),
                nlink: int = 1) -> None:
        self.ino += 1
        encoded = name.encode() + b"\0"
        fields = [self.ino, mode, 0, 0, nlink, self.mtime, size, 0, 0, rdev[0], rdev[1],
                  len(encoded), 0]
        header = b"070701" + b"".join(b"%08X" % f for f in fields)
        self.out.write(header + encoded)
        self._pad(len(header) + len(encoded))

    def _pad(self, n: int) -> None:
        self.out.write(b"\0" * ((4 - n % 4) % 4))

    def add_dir(self, name: str, perm: int = 0o755) -> None:
        if name not in self.written:
            self.written.add(name)
            self._header(name, stat.S_IFDIR | perm, 0, nlink=2)

    def add_parents(self, name: str) -> None:
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            self.add_dir("/".join(parts[:i]))

    def add_file(self, name: str, data: bytes, perm: int = 0o644) -> None:
        self.add_parents(name)
        self.written.add(name)
        self._header(name, stat.S_IFREG | perm, len(data))
        self.out.write(data)
        self._pad(len(data))

    def add_symlink(self, name: str, target: str) -> None:
        self.add_parents(name)
        self.written.add(name)
        data = target.encode()
        self._header(name, stat.S_IFLNK | 0o777, len(data))
        self.out.write(data)
        self._pad(len(data))

    def add_chardev(self, name: str, major: int, minor: int, perm: int = 0o600) -> None:
        self.add_parents(name)
        self.written.add(name)
        self._header(name, stat.S_IFCHR | perm, 0, rdev=(major, minor))

    def add_tree(self, root: Path) -> None:
        """Every file, directory and symlink below root, sorted, as root:root."""
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, root)
            for name in sorted(dirnames) + sorted(filenames):
                p = Path(dirpath) / name
                rel = name if rel_dir == "." else f"{rel_dir}/{name}"
                st = p.lstat()
                if stat.S_ISLNK(st.st_mode):
                    self.add_symlink(rel, os.readlink(p))
                elif stat.S_ISDIR(st.st_mode):
                    self.add_dir(rel, stat.S_IMODE(st.st_mode))
                elif stat.S_ISREG(st.st_mode):
                    self.add_file(rel, p.read_bytes(), stat.S_IMODE(st.st_mode))

    def finish(self) -> None:
        self._header(TRAILER, 0, 0, nlink=1)
        # The kernel reads cpio archives back to back: pad to 512 so one can follow.
        pos = self.out.tell()
        self.out.write(b"\0" * ((512 - pos % 512) % 512))


def read_names(data: bytes) -> list[str]:
    """Names in a newc archive (tests use this to check what an image holds)."""
    names, pos = [], 0
    while pos + 110 <= len(data):
        if data[pos:pos + 6] != b"070701":
            pos += 4  # padding between concatenated archives
            continue
        fields = [int(data[pos + 6 + 8 * i: pos + 14 + 8 * i], 16) for i in range(13)]
        namesize, filesize = fields[11], fields[6]
        name = data[pos + 110: pos + 110 + namesize - 1].decode()
        pos += 110 + namesize
        pos += (4 - pos % 4) % 4
        pos += filesize
        pos += (4 - pos % 4) % 4
        if name != TRAILER:
            names.append(name)
    return names

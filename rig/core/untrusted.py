"""Reading a file the rig did not just write (a result directory's inputs.json or held.json,
someone else's copy of one) as input from a stranger: a regular file of bounded size, JSON,
and each value checked before the rig runs, reads or writes anything it names. Every check
fails with one line (UserError) naming the file and what is wrong.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any

from rig.core.errors import UserError

SHA256 = re.compile(r"[0-9a-f]{64}")
# A file name the rig makes itself (a lock: guest-amd64-<key>.json): no separator, no dot first.
PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,200}")
MAX_PATH = 4096


def read_json(path: Path, max_bytes: int, what: str) -> Any:
    """The JSON in path: a regular file (not a symlink, a FIFO or a device) of at most
    max_bytes."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise UserError(f"{path}: missing; {what}") from None
    if not stat.S_ISREG(st.st_mode):
        raise UserError(f"{path}: not a regular file (a symlink or a special file); {what}")
    if st.st_size > max_bytes:
        raise UserError(f"{path}: {st.st_size} bytes, more than the {max_bytes} such a record can be; {what}")
    try:
        with open(path, "rb") as f:
            return json.loads(f.read(max_bytes + 1))
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: not JSON ({e}); {what}") from e


def expect(value: object, types: type | tuple[type, ...], where: str) -> Any:
    """value of these JSON types (a bool is never taken for a number)."""
    wanted = types if isinstance(types, tuple) else (types,)
    if isinstance(value, bool) and bool not in wanted or not isinstance(value, wanted):
        names = " or ".join("null" if t is type(None) else t.__name__ for t in wanted)
        raise UserError(f"{where}: {str(value)[:80]!r} is not {names}")
    return value


def plain_name(value: object, where: str) -> str:
    """A bare file name: no directory part, no '..', nothing that leaves the directory."""
    name = expect(value, str, where)
    if not PLAIN_NAME.fullmatch(name):
        raise UserError(f"{where}: {name[:80]!r} is not a plain file name")
    return str(name)


def absolute_path(value: object, where: str) -> Path:
    """An absolute, normalised path of printable characters (no '..', no newline)."""
    text = expect(value, str, where)
    if not text.startswith("/") or len(text) > MAX_PATH or not text.isprintable() \
            or os.path.normpath(text) != text:
        raise UserError(f"{where}: {text[:80]!r} is not an absolute, normalised path of printable characters")
    return Path(text)


def sha256_hex(value: object, where: str) -> str:
    digest = expect(value, str, where)
    if not SHA256.fullmatch(digest):
        raise UserError(f"{where}: {digest[:80]!r} is not a sha256 (64 lowercase hex digits)")
    return str(digest)


def regular_file(path: Path, where: str, directory: bool = False) -> os.stat_result:
    """path exists and is itself a regular file (or a directory): not a symlink to one."""
    try:
        st = os.lstat(path)
    except OSError:
        raise UserError(f"{where} {path}: not here") from None
    if not (stat.S_ISDIR(st.st_mode) if directory else stat.S_ISREG(st.st_mode)):
        kind = "directory" if directory else "regular file"
        raise UserError(f"{where} {path}: not a {kind} (a symlink or a special file): give the file itself")
    return st

"""The content-addressed cache: downloads, resolved package locks, built images.

An entry is a directory named by a hash of everything that went into it. It is built in
a temporary sibling and renamed into place only when complete, with a manifest of every
file's size and sha256 written last: a half-written entry never has the final name, and
a corrupt one fails its manifest check and is rebuilt, never used.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rig.core.errors import UserError
from rig.core.json_object import JsonObject

MANIFEST = "manifest.json"
VERIFIED = ".verified.json"     # the files' identities when last hashed and found as listed


def sha256_file(path: Path, bufsize: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(bufsize):
            h.update(chunk)
    return h.hexdigest()


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "intx-rig"


def content_key(*parts: object) -> str:
    """A stable short hash of JSON-able parts (recipe, resolved versions, code hash)."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def tree_hash(paths: list[Path]) -> str:
    """Hash of source files (the builders' own code), so a code change rebuilds."""
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:20]


class Cache:
    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root else default_cache_dir()
        self._check_writable()

    def _check_writable(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".probe-"):
                pass
        except OSError as e:
            raise UserError(f"cache dir {self.root} is not writable ({e.strerror}): "
                            "pass --cache-dir DIR or set XDG_CACHE_HOME") from e

    def path(self, *parts: str) -> Path:
        p = self.root.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        """One process at a time (rigs and test workers run side by side on one cache):
        an flock on cache/.locks/<name>. The lock goes with the process, however it ends."""
        path = self.path(".locks", name)
        with open(path, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def lookup(self, kind: str, key: str) -> Path | None:
        """The entry if it exists and every file matches its manifest; a bad one is removed."""
        entry = self.root / kind / key
        if not entry.is_dir():
            return None
        if verify_manifest(entry):
            return entry
        shutil.rmtree(entry, ignore_errors=True)
        return None

    def build(self, kind: str, key: str, builder: Callable[[Path], JsonObject]) -> Path:
        """Return the verified entry, building it with builder(tmpdir) -> meta if needed."""
        found = self.lookup(kind, key)
        if found:
            return found
        with self.exclusive(f"{kind}-{key}"):
            found = self.lookup(kind, key)   # another process may have built it meanwhile
            if found:
                return found
            final = self.root / kind / key
            final.parent.mkdir(parents=True, exist_ok=True)
            with self._staging(final) as tmp:
                meta = builder(tmp)
                write_manifest(tmp, meta)
                os.replace(tmp, final) if not final.exists() else shutil.rmtree(tmp)
        return final

    @contextmanager
    def _staging(self, final: Path) -> Iterator[Path]:
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
        try:
            yield tmp
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def read_json(self, *parts: str) -> JsonObject | None:
        p = self.root.joinpath(*parts)
        try:
            data: JsonObject = json.loads(p.read_text())
            return data
        except (OSError, ValueError):
            return None

    def write_json(self, data: JsonObject, *parts: str) -> None:
        p = self.path(*parts)
        tmp = p.with_name(f".{p.name}.{os.getpid()}")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, p)


def write_manifest(entry: Path, meta: JsonObject) -> None:
    files = {}
    for p in sorted(entry.rglob("*")):
        if p.is_file() and not p.is_symlink() and p.name not in (MANIFEST, VERIFIED):
            files[str(p.relative_to(entry))] = {"size": p.stat().st_size, "sha256": sha256_file(p)}
    (entry / MANIFEST).write_text(json.dumps({"meta": meta, "files": files}, indent=1))


def read_meta(entry: Path) -> JsonObject:
    meta: JsonObject = json.loads((entry / MANIFEST).read_text())["meta"]
    return meta


def _identity(p: Path) -> list[int]:
    """What changes when a file's content is written or replaced: its size, inode, mtime and
    ctime (ctime cannot be set back by anyone who writes the file). Git's index trusts the
    same to skip hashing a file it already hashed."""
    st = p.stat()
    return [st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns]


def verify_manifest(entry: Path) -> bool:
    """Every file of the entry as its manifest lists it. Hashed in full the first time and
    whenever a file or the manifest changed since the last full check; otherwise the files'
    identities, recorded then beside the manifest (VERIFIED), vouch for them: 0.8 s of hashing
    (a 200 MB QEMU root, a 160 MB image) on every run otherwise."""
    try:
        manifest = json.loads((entry / MANIFEST).read_text())
        files = manifest["files"]
        now = {MANIFEST: _identity(entry / MANIFEST), **{rel: _identity(entry / rel) for rel in files}}
        if _verified(entry) == now:
            return True
        for rel, want in files.items():
            if now[rel][0] != want["size"] or sha256_file(entry / rel) != want["sha256"]:
                return False
    except (OSError, ValueError, KeyError, TypeError):
        return False
    _write_verified(entry, now)
    return True


def _verified(entry: Path) -> object:
    try:
        return json.loads((entry / VERIFIED).read_text())
    except (OSError, ValueError):
        return None


def _write_verified(entry: Path, identities: dict[str, list[int]]) -> None:
    tmp = entry / f"{VERIFIED}.{os.getpid()}"
    try:
        tmp.write_text(json.dumps(identities))
        os.replace(tmp, entry / VERIFIED)
    except OSError:
        tmp.unlink(missing_ok=True)        # a read-only cache: hashed again next time

"""Booted L1 guests saved in the cache and restored instead of booted.

A snapshot is L0 QEMU's migration stream of L1 written to a file (QMP `migrate` to
`file:`), taken once L1 answered SSH and before the chain touched it (the device is
attached, unbound). A later run whose L1 would be the same machine restores it: QEMU
started with `-incoming defer`, then `migrate-incoming` from the file, then `cont`.

Keyed by everything that shapes the guest: the QEMU binary (path, size, mtime, version)
and its full L1 command line with what is particular to one run (the run directory, the
log directory, the forwarded SSH port) taken out; the kernel and initramfs files by size
and mtime besides their paths (cache entries are content-keyed directories; a user's
kernel is not). Written atomically (a staging directory renamed into place) under a lock,
bounded in disk by an LRU limit. A snapshot that fails to restore is removed only when it
is proven bad (QEMU could not load its stream); any other failure (an SSH timeout on a loaded
machine, a port taken) keeps it, recorded, and the run boots cold (and saves a fresh one
over it); MAX_FAILED_RESTORES such failures in a row remove it too. Checksums are not
computed on use (300 MB would cost more than the restore saves): QEMU's stream has its own
framing, and a stream that does not load is discarded.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rig.core import timeouts
from rig.core.cache import Cache, content_key
from rig.core.errors import InfraError
from rig.core.json_object import JsonObject
from rig.guests.machine import QemuMachine
from rig.host.qemu import QemuBinary

log = logging.getLogger(__name__)

KIND = "snapshots"
STREAM = "l1.migration"
META = "meta.json"
PORT = re.compile(r"(hostfwd=tcp:127\.0\.0\.1:)\d+")
# At most this much disk for snapshots (each 270-350 MB): the least recently used go first.
# make test uses 20 (5.8 GiB, 2026-12-04); at 8 GiB, with a kernel-tree matrix's 14 more,
# they pushed each other out (22 of the 27 in the store saved again in one run). Room for
# those and a developer's own kernels beside them.
LIMIT_BYTES = 16 << 30
# A snapshot that failed this many times in a row for reasons that prove nothing alone (a
# guest that did not answer in time) is removed: by then it is the snapshot, not the load.
MAX_FAILED_RESTORES = 3


class BadSnapshot(InfraError):
    """QEMU could not load a snapshot's stream: the snapshot itself is bad."""


def file_identity(path: str) -> str:
    """A file named on the command line, as part of the key: its path, size and mtime."""
    try:
        st = os.stat(path)
    except OSError:
        return path
    return f"{path}:{st.st_size}:{st.st_mtime_ns}"


def snapshot_key(argv: list[str], qemu: QemuBinary, run_dir: Path, log_dir: Path) -> str:
    """What shapes the guest: the QEMU, and its command line without what one run chooses
    for itself."""
    shape = []
    for arg in argv:
        arg = arg.replace(str(run_dir), "{run}").replace(str(log_dir), "{out}")
        shape.append(PORT.sub(r"\g<1>{port}", arg))
    files = [file_identity(a) for a, prev in zip(argv[1:], argv[:-1], strict=True) if prev in ("-kernel", "-initrd")]
    return content_key("l1-snapshot", shape, qemu.version_text, file_identity(str(qemu.path)), files)


@dataclass
class Restored:
    seconds: float
    key: str


class SnapshotStore:
    """The cache's snapshots: look one up, save one, restore one, keep the total bounded."""

    def __init__(self, cache: Cache, limit_bytes: int = LIMIT_BYTES):
        self.cache = cache
        self.root = cache.root / KIND
        self.limit = limit_bytes

    def lookup(self, key: str) -> Path | None:
        stream = self.root / key / STREAM
        try:
            os.utime(self.root / key / META)      # used: the LRU keeps it
        except OSError:
            return None                           # none, or removed meanwhile by another rig
        return stream if stream.is_file() else None

    def meta(self, key: str) -> JsonObject:
        """What was recorded beside a snapshot when it was saved ({} if none)."""
        try:
            data: JsonObject = json.loads((self.root / key / META).read_text())
        except (OSError, ValueError):
            return {}
        return data

    def save(self, machine: QemuMachine, key: str, extra: JsonObject | None = None) -> float | None:
        """Save the running guest under key (it runs on afterwards), with `extra` recorded
        beside it; seconds it took, or None if it was not saved (QEMU refused: a device
        that cannot migrate). An entry kept after a failed restore (its meta counts the
        failures) is replaced: this run booted the same guest, so the new one is known good."""
        if self.lookup(key) and not self.suspect(key):
            return None
        self.root.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        with self.cache.exclusive(f"snapshot-{key}"):
            if (self.root / key).exists():
                if not self.suspect(key):
                    return None
                self.discard(self.root / key)
            staging = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=self.root))
            try:
                status = migrate(machine, "migrate", staging / STREAM, timeouts.SNAPSHOT_SAVE_S)
                if machine.cmd("query-status").get("status") != "running":
                    machine.cmd("cont")
                if status != "completed":
                    log.info("snapshot not saved: migration %s", status)
                    return None
                (staging / META).write_text(json.dumps(
                    {"key": key, "saved_at": time.time(), "bytes": (staging / STREAM).stat().st_size,
                     **(extra or {})}))
                self.discard(self.root / key)     # anything there now is older than this save
                os.replace(staging, self.root / key)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        self.prune(keep=key)
        return time.monotonic() - t0

    def restore(self, machine: QemuMachine, stream: Path) -> float:
        """Load the stream into a QEMU started with -incoming defer and let it run; the
        seconds it took. BadSnapshot if QEMU could not load it, InfraError if it did not
        finish (a stuck or loaded machine proves nothing about the snapshot)."""
        t0 = time.monotonic()
        try:
            status = migrate(machine, "migrate-incoming", stream, timeouts.SNAPSHOT_RESTORE_S)
        except InfraError as e:
            status = f"lost the monitor: {e}"
        if status.startswith("failed"):
            raise BadSnapshot(f"snapshot {stream.parent.name} did not restore (migration {status})")
        # QEMU exits when the stream it loads is bad (a truncated one): as soon as it reads the
        # end, sometimes before its answer to migrate-incoming, and its monitor may go a
        # moment before the process does.
        if status != "completed" and machine.exits_within(timeouts.QEMU_EXIT_S):
            raise BadSnapshot(f"snapshot {stream.parent.name}: QEMU exited loading it ({status})")
        if status != "completed":
            raise InfraError(f"snapshot {stream.parent.name} did not restore (migration {status})")
        if machine.cmd("query-status").get("status") != "running":
            machine.cmd("cont")
        return time.monotonic() - t0

    def discard(self, entry: Path) -> None:
        shutil.rmtree(entry, ignore_errors=True)

    def failed(self, entry: Path, why: str, proven: bool) -> bool:
        """A restore of this entry failed: removed if that proves it bad, or if it failed
        MAX_FAILED_RESTORES times in a row; else the failure is counted. True if removed."""
        with self.cache.exclusive(f"snapshot-{entry.name}"):
            meta = self.meta(entry.name)
            failures = [*meta.get("failed_restores", []), why[:300]][-MAX_FAILED_RESTORES:]
            if proven or len(failures) >= MAX_FAILED_RESTORES:
                self.discard(entry)
                return True
            self._write_meta(entry, {**meta, "failed_restores": failures})
        return False

    def suspect(self, key: str) -> bool:
        """A restore of it failed since it was saved (for a reason that proved nothing)."""
        return bool(self.meta(key).get("failed_restores"))

    def restored(self, entry: Path) -> None:
        """A restore of this entry worked: earlier failures were the machine's, not its own."""
        with self.cache.exclusive(f"snapshot-{entry.name}"):
            meta = self.meta(entry.name)
            if meta.pop("failed_restores", None) is not None:
                self._write_meta(entry, meta)

    def _write_meta(self, entry: Path, meta: JsonObject) -> None:
        """Under the entry's lock, and only while its stream is there: another rig may have
        removed the entry (or be saving it anew), and a meta.json alone would be an entry
        with no snapshot, in the way of that save."""
        if (entry / STREAM).is_file():
            self.cache.write_json(meta, KIND, entry.name, META)

    def entries(self) -> list[tuple[float, int, Path]]:
        """(last used, bytes, entry) of every snapshot, least recently used first."""
        out = []
        for entry in self.root.glob("*/"):
            if entry.name.startswith("."):
                continue
            try:
                out.append((os.stat(entry / META).st_mtime, (entry / STREAM).stat().st_size, entry))
            except OSError:
                continue
        return sorted(out)

    def prune(self, keep: str | None = None, limit: int | None = None) -> tuple[int, int]:
        """Remove the least recently used until the rest fit in the limit; (removed, bytes freed)."""
        limit = self.limit if limit is None else limit
        for staging in self.root.glob(".*"):   # a save that was killed midway
            if staging.is_dir() and time.time() - staging.stat().st_mtime > timeouts.SNAPSHOT_SAVE_S:
                self.discard(staging)
        entries = self.entries()
        total = sum(size for _, size, _ in entries)
        removed = freed = 0
        for _, size, entry in entries:
            if total <= limit:
                break
            if entry.name == keep:
                continue
            self.discard(entry)
            total, removed, freed = total - size, removed + 1, freed + size
        return removed, freed


def migrate(machine: QemuMachine, command: str, path: Path, timeout: float) -> str:
    """Start an outgoing or incoming migration to/from a file and wait for its end; its
    final status ("completed", "failed", ...). An outgoing one not finished in time is
    cancelled: left to finish later, it would leave the guest paused (postmigrate)."""
    try:
        machine.cmd(command, uri=f"file:{path}")
    except InfraError as e:
        return f"refused: {e}"
    status = wait_migration(machine, timeout)
    if status is not None:
        return status
    if command == "migrate":
        machine.cmd("migrate_cancel")
        after = wait_migration(machine, timeouts.SNAPSHOT_CANCEL_S)
        return f"not finished after {timeout:.0f} s (cancelled: {after or 'still cancelling'})"
    return f"not finished after {timeout:.0f} s"


def wait_migration(machine: QemuMachine, timeout: float) -> str | None:
    """The migration's final status, or None if it has none within timeout. Polled: the
    MIGRATION event may come before the wait starts."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = machine.cmd("query-migrate")
        status = info.get("status", "none")
        if status in ("completed", "failed", "cancelled"):
            if status == "failed":
                status += f": {info.get('error-desc', '')}"
            return str(status)
        machine.wait_event("MIGRATION", timeouts.SNAPSHOT_POLL_S)
    return None

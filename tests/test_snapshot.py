"""Snapshots of a booted L1 (rig.guests.snapshot): what keys them, and the disk bound. The
saving and restoring themselves run against real QEMU in tests/test_snapshot_e2e.py."""

import os
import shutil
import time
from pathlib import Path

import pytest

from rig.core.cache import Cache
from rig.core.errors import InfraError
from rig.guests.snapshot import MAX_FAILED_RESTORES, META, STREAM, BadSnapshot, SnapshotStore, snapshot_key
from rig.host.qemu import QemuBinary

pytestmark = pytest.mark.unit


def argv(run: str, out: str, port: int, kernel: str) -> list[str]:
    return ["qemu-system-ppc64", "-M", "powernv9", "-chardev", f"socket,id=qmp,path={run}/l1-qmp.sock",
            "-chardev", f"socket,id=con0,path={run}/l1-console.sock,logfile={out}/l1-console.log",
            "-kernel", kernel, "-netdev", f"user,id=net0,hostfwd=tcp:127.0.0.1:{port}-:22"]


@pytest.fixture
def qemu(tmp_path):
    q = QemuBinary(path=tmp_path / "qemu", source="test")
    q.path.write_text("x")
    q.__dict__["version_text"] = "QEMU emulator version 11.1.3"     # no process to ask
    return q


def test_one_guest_one_key_whatever_the_run_chose_for_itself(tmp_path, qemu):
    kernel = tmp_path / "vmlinux"
    kernel.write_text("k")
    a = snapshot_key(argv("/run/a", "/out/a", 2222, str(kernel)), qemu, Path("/run/a"), Path("/out/a"))
    b = snapshot_key(argv("/run/b", "/out/b", 40123, str(kernel)), qemu, Path("/run/b"), Path("/out/b"))
    assert a == b


def test_another_kernel_machine_or_qemu_is_another_snapshot(tmp_path, qemu):
    kernel = tmp_path / "vmlinux"
    kernel.write_text("k")
    base = snapshot_key(argv("/r", "/o", 1, str(kernel)), qemu, Path("/r"), Path("/o"))
    other_machine = argv("/r", "/o", 1, str(kernel))
    other_machine[2] = "pseries"
    assert snapshot_key(other_machine, qemu, Path("/r"), Path("/o")) != base
    kernel.write_text("rebuilt, same path")
    os.utime(kernel, ns=(time.time_ns(), time.time_ns() + 10**9))
    rebuilt = snapshot_key(argv("/r", "/o", 1, str(kernel)), qemu, Path("/r"), Path("/o"))
    assert rebuilt != base
    qemu.__dict__["version_text"] = "QEMU emulator version 11.2.0"
    assert snapshot_key(argv("/r", "/o", 1, str(kernel)), qemu, Path("/r"), Path("/o")) != rebuilt


def put(store: SnapshotStore, key: str, size: int, used: float) -> None:
    entry = store.root / key
    entry.mkdir(parents=True)
    (entry / STREAM).write_bytes(b"\0" * size)
    (entry / META).write_text("{}")
    os.utime(entry / META, (used, used))


def test_lookup_finds_a_snapshot_and_marks_it_used(tmp_path):
    store = SnapshotStore(Cache(tmp_path / "cache"))
    assert store.lookup("k1") is None
    put(store, "k1", 10, 1000.0)
    assert store.lookup("k1") == store.root / "k1" / STREAM
    assert os.stat(store.root / "k1" / META).st_mtime > 1000.0


def test_prune_removes_the_least_recently_used_beyond_the_limit(tmp_path):
    store = SnapshotStore(Cache(tmp_path / "cache"), limit_bytes=250)
    for i, key in enumerate(("old", "mid", "new")):
        put(store, key, 100, 1000.0 + i)
    assert store.prune(keep="old") == (1, 100)          # "old" was just saved: "mid" goes
    assert sorted(p.name for p in store.root.iterdir()) == ["new", "old"]
    assert store.prune(limit=0) == (2, 200)             # rig cache prune --all
    assert list(store.root.iterdir()) == []


def test_a_save_killed_midway_is_cleared_by_the_next_prune(tmp_path):
    store = SnapshotStore(Cache(tmp_path / "cache"))
    staging = store.root / ".k1.abc"
    staging.mkdir(parents=True)
    (staging / STREAM).write_bytes(b"half")
    os.utime(staging, (time.time() - 3600, time.time() - 3600))
    fresh = store.root / ".k2.def"                 # another rig saving right now: left alone
    fresh.mkdir()
    assert store.entries() == []
    store.prune()
    assert not staging.exists() and fresh.exists()


def test_a_snapshot_is_removed_only_when_proven_bad(tmp_path):
    store = SnapshotStore(Cache(tmp_path / "cache"))
    put(store, "k1", 10, 1000.0)
    entry = store.root / "k1"
    # An SSH timeout on a loaded machine proves nothing: kept, counted.
    for n in range(1, MAX_FAILED_RESTORES):
        assert store.failed(entry, f"SSH timeout {n}", proven=False) is False
        assert store.meta("k1")["failed_restores"][-1] == f"SSH timeout {n}"
    store.restored(entry)                             # then it worked: the count starts again
    assert "failed_restores" not in store.meta("k1")
    for _ in range(1, MAX_FAILED_RESTORES):
        assert store.failed(entry, "SSH timeout", proven=False) is False
    assert store.failed(entry, "SSH timeout", proven=False) is True    # every time: it is the snapshot
    assert not entry.exists()
    put(store, "k2", 10, 1000.0)
    assert store.failed(store.root / "k2", "migration failed: stream truncated", proven=True) is True
    assert not (store.root / "k2").exists()


def test_a_kept_snapshot_is_replaced_by_the_next_save(tmp_path):
    """A snapshot kept after a failed restore is replaced when the same run, having booted,
    saves the guest again: the cache ends with one known to restore."""
    store = SnapshotStore(Cache(tmp_path / "cache"))
    put(store, "k1", 10, 1000.0)
    assert not store.suspect("k1")
    store.failed(store.root / "k1", "SSH timeout", proven=False)
    assert store.suspect("k1") and (store.root / "k1").exists()
    store.restored(store.root / "k1")
    assert not store.suspect("k1")


class SavingQemu:
    """A QEMU whose outgoing migration to a file completes at once."""

    def cmd(self, name: str, **args: object) -> dict:
        if name == "migrate":
            Path(str(args["uri"]).removeprefix("file:")).write_bytes(b"stream")
        return {"status": "completed"} if name == "query-migrate" else {"status": "running"}

    def wait_event(self, *_: object) -> None:
        return None


def test_an_entry_removed_by_another_rig_is_not_made_again_by_a_meta_update(tmp_path):
    """Rigs side by side on one cache: one restores an entry while another removes it (a
    prune, a proven-bad restore). The first's record of how its restore went must not leave
    a meta.json alone in its place, which stood in the way of the next save (CI, 2026-12-07:
    "Directory not empty" renaming a saved snapshot into place)."""
    store = SnapshotStore(Cache(tmp_path / "cache"))
    put(store, "k1", 10, 1000.0)
    entry = store.root / "k1"
    shutil.rmtree(entry)                                  # the other rig
    store.restored(entry)
    assert store.failed(entry, "SSH timeout", proven=False) is False
    assert not entry.exists() and store.lookup("k1") is None
    entry.mkdir()                                         # left by an older rig: a meta alone
    (entry / META).write_text('{"failed_restores": ["x"]}')
    assert store.lookup("k1") is None
    assert store.save(SavingQemu(), "k1") is not None     # type: ignore[arg-type]
    assert (entry / STREAM).read_bytes() == b"stream" and not store.suspect("k1")


class LoadingQemu:
    """A QEMU loading a stream, as its monitor shows it: `answers` is what
    migrate-incoming does (None: accepted; an error: the monitor went with the process)."""

    def __init__(self, answers: Exception | None, status: str, exits: bool):
        self.answers, self.status, self.exits = answers, status, exits

    def cmd(self, name: str, **_: object) -> dict:
        if name == "migrate-incoming" and self.answers:
            raise self.answers
        return {"status": self.status} if name == "query-migrate" else {"status": "running"}

    def wait_event(self, *_: object) -> None:
        return None

    def exits_within(self, _: float) -> bool:
        return self.exits


@pytest.mark.parametrize("machine, bad", [
    # QEMU read the truncated end before it answered: the monitor is gone, then the process.
    (LoadingQemu(InfraError("QMP socket closed"), "", exits=True), True),
    (LoadingQemu(None, "failed", exits=False), True),
    # No answer, and QEMU still there: a loaded machine, not proof against the snapshot.
    (LoadingQemu(InfraError("QMP timeout"), "", exits=False), False),
    (LoadingQemu(None, "completed", exits=False), None),
])
def test_a_restore_that_fails_says_whether_the_snapshot_is_to_blame(tmp_path, machine, bad):
    store = SnapshotStore(Cache(tmp_path / "cache"))
    put(store, "k1", 10, 1000.0)
    if bad is None:
        assert store.restore(machine, store.root / "k1" / STREAM) >= 0
        return
    with pytest.raises(InfraError) as e:
        store.restore(machine, store.root / "k1" / STREAM)
    assert isinstance(e.value, BadSnapshot) is bad

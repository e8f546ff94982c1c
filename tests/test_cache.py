import os
from pathlib import Path

import pytest

from rig.core import cache as cache_module
from rig.core.cache import VERIFIED, Cache, content_key, verify_manifest
from rig.core.errors import UserError

pytestmark = pytest.mark.unit


def test_content_key_is_stable_and_order_insensitive_for_dicts():
    assert content_key({"a": 1, "b": [1, 2]}) == content_key({"b": [1, 2], "a": 1})
    assert content_key({"a": 1}) != content_key({"a": 2})


def _builder(calls):
    def build(tmp: Path) -> dict:
        calls.append(tmp)
        (tmp / "sub").mkdir()
        (tmp / "sub/file").write_bytes(b"x" * 1000)
        return {"what": "test"}
    return build


def test_second_build_is_a_lookup(tmp_path):
    cache, calls = Cache(tmp_path), []
    first = cache.build("images", "k1", _builder(calls))
    second = cache.build("images", "k1", _builder(calls))
    assert first == second and len(calls) == 1
    assert verify_manifest(first)


def test_corrupt_entry_is_detected_and_rebuilt(tmp_path):
    cache, calls = Cache(tmp_path), []
    entry = cache.build("images", "k1", _builder(calls))
    data = bytearray((entry / "sub/file").read_bytes())
    data[10] ^= 0xFF  # same size, different content
    (entry / "sub/file").write_bytes(bytes(data))
    assert cache.lookup("images", "k1") is None
    cache.build("images", "k1", _builder(calls))
    assert len(calls) == 2 and (entry / "sub/file").read_bytes() == b"x" * 1000


def test_an_entry_checked_once_is_not_hashed_again_until_a_file_changes(tmp_path, monkeypatch):
    cache, calls = Cache(tmp_path), []
    entry = cache.build("images", "k1", _builder(calls))
    hashed = []
    real = cache_module.sha256_file
    monkeypatch.setattr(cache_module, "sha256_file", lambda p: hashed.append(p) or real(p))
    assert cache.lookup("images", "k1") == entry and len(hashed) == 1     # the first full check
    assert cache.lookup("images", "k1") == entry and len(hashed) == 1     # vouched for since
    # The same size and mtime put back by hand: its ctime still changed, so it is hashed.
    f = entry / "sub/file"
    st = f.stat()
    f.write_bytes(b"y" * 1000)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert cache.lookup("images", "k1") is None and len(hashed) == 2


def test_a_record_of_a_check_that_does_not_match_the_files_vouches_for_nothing(tmp_path):
    cache, calls = Cache(tmp_path), []
    entry = cache.build("images", "k1", _builder(calls))
    assert cache.lookup("images", "k1") == entry
    (entry / "sub/file").write_bytes(b"z" * 1000)
    # A stranger's record, written for other files: the files are hashed and found changed.
    (entry / VERIFIED).write_text('{"manifest.json": [1, 2, 3, 4], "sub/file": [1000, 5, 6, 7]}')
    assert cache.lookup("images", "k1") is None


def test_half_written_entry_is_never_used(tmp_path):
    cache, calls = Cache(tmp_path), []
    # A build killed midway leaves a staging dir (never the final name) or, if someone
    # copied by hand, a final dir without manifest: both must be rebuilt.
    (tmp_path / "images/k1").mkdir(parents=True)
    (tmp_path / "images/k1/sub").mkdir()
    assert cache.lookup("images", "k1") is None
    cache.build("images", "k1", _builder(calls))
    assert len(calls) == 1


def test_failed_build_leaves_nothing(tmp_path):
    cache = Cache(tmp_path)

    def boom(tmp):
        (tmp / "partial").write_text("half")
        raise RuntimeError("build failed")
    with pytest.raises(RuntimeError):
        cache.build("images", "k2", boom)
    assert os.listdir(tmp_path / "images") == []


def test_unwritable_cache_dir_is_a_user_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(UserError, match="not writable"):
        Cache(blocker / "cache")


def test_two_rigs_building_the_same_entry_build_it_once(tmp_path):
    """Rigs and pytest-xdist workers share one cache: the second waits on the first's flock
    and then finds the entry (two processes here; flock is per open file, so it holds)."""
    import multiprocessing
    ctx = multiprocessing.get_context("fork")
    calls = ctx.Value("i", 0)

    def build_slowly():
        def builder(tmp: Path) -> dict:
            with calls.get_lock():
                calls.value += 1
            import time
            time.sleep(0.5)
            (tmp / "f").write_text("x")
            return {}
        Cache(tmp_path).build("images", "same", builder)

    procs = [ctx.Process(target=build_slowly) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert calls.value == 1 and verify_manifest(tmp_path / "images" / "same")

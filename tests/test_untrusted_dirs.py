"""Result directories from strangers: a corpus of crafted ones, each given to the real CLI
(`rig rerun`, `rig ssh`, `rig monitor`, `rig stop`). Every one is refused in one line with
exit status 2, and nothing is written or run: the file system under the test's root (the
directory, the cache, a target outside both) is the same after as before, and a planted
program that would leave a mark when run left none."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import run_rig

from rig.core import spec_json
from rig.core.spec import RunSpec
from rig.reports.reproducer import INPUTS, Inputs

pytestmark = pytest.mark.unit

Edit = Callable[[dict, Path], None]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def genuine(root: Path) -> dict:
    """inputs.json as `rig run` writes it for a run with the user's own kernel."""
    kernel = root / "mine" / "vmlinux"
    kernel.parent.mkdir(parents=True, exist_ok=True)
    kernel.write_bytes(b"\x7fELF a kernel")
    spec = RunSpec("ppc64", consumer="userspace").validate()
    files = {"kernel": kernel}
    lock = {"resolved_at": "2026-12-01", "packages": [
        {"name": "busybox-static", "version": "1:1.35.0-4", "arch": "ppc64el",
         "filename": "pool/main/b/busybox/busybox-static_1.35.0-4_ppc64el.deb", "sha256": "1" * 64, "size": 9}]}
    inputs = Inputs("ppc64-xive-own-kernel-userspace", "STALL", spec_json.to_json(spec), spec_json.to_argv(spec, files),
                    {"kernel": {"path": str(kernel), "sha256": sha(kernel)}}, {"l0_qemu": "QEMU 11.1.3"},
                    "0.1.0", "2026-12-06T00:00:00Z", {"guest-ppc64el-0123456789abcdef0123.json": lock})
    return json.loads(json.dumps(inputs.__dict__))


def evil_program(root: Path) -> Path:
    """A program that leaves a mark if anything runs it."""
    prog = root / "evil"
    prog.write_text(f"#!/bin/sh\ntouch {root / 'outside' / 'RAN'}\necho 'QEMU emulator version 11.1.3'\n")
    prog.chmod(0o755)
    return prog


def lock_named(name: str) -> Edit:
    def edit(d: dict, root: Path) -> None:
        d["locks"] = {name: next(iter(d["locks"].values()))}
    return edit


def package(key: str, value: object) -> Edit:
    def edit(d: dict, root: Path) -> None:
        next(iter(d["locks"].values()))["packages"][0][key] = value
    return edit


def spec_field(key: str, value: object) -> Edit:
    def edit(d: dict, root: Path) -> None:
        d["spec"][key] = value
    return edit


def kernel_path(path: str) -> Edit:
    def edit(d: dict, root: Path) -> None:
        d["files"]["kernel"]["path"] = path.format(root=root)
    return edit


def top(key: str, value: object) -> Edit:
    def edit(d: dict, root: Path) -> None:
        d[key] = value
    return edit


def evil_qemu_named_in_files(d: dict, root: Path) -> None:
    """The spec cannot name a QEMU; a QEMU in files (and so in the options) whose sha256 is
    not the one recorded."""
    d["files"]["qemu"] = {"path": str(evil_program(root)), "sha256": "0" * 64}
    d["options"] += ["--qemu", d["files"]["qemu"]["path"]]


def evil_qemu_in_options(d: dict, root: Path) -> None:
    d["options"] += ["--qemu", str(evil_program(root))]


def qemu_key_in_spec(d: dict, root: Path) -> None:
    d["spec"]["qemu"] = str(evil_program(root))


def kernel_symlinked(d: dict, root: Path) -> None:
    link = root / "mine" / "link"
    link.symlink_to(root / "mine" / "vmlinux")
    d["options"][d["options"].index(d["files"]["kernel"]["path"])] = str(link)
    d["files"]["kernel"]["path"] = str(link)


def kernel_changed(d: dict, root: Path) -> None:
    d["files"]["kernel"]["sha256"] = "f" * 64


# (name, how inputs.json is edited, what the one line names)
INPUTS_CASES: list[tuple[str, Edit, str]] = [
    ("lock name with ../", lock_named("../../outside/x.json"), "not a plain file name"),
    ("absolute lock name", lock_named("/tmp/x.json"), "not a plain file name"),
    ("lock name with a directory", lock_named("sub/x.json"), "not a plain file name"),
    ("hidden lock name", lock_named(".x.json"), "not a plain file name"),
    ("lock name not .json", lock_named("x.sh"), "ends in .json"),
    ("lock package outside the pool", package("filename", "../../../etc/passwd.deb"), "Debian's pool"),
    ("lock package absolute", package("filename", "/outside/x.deb"), "Debian's pool"),
    ("lock package sha256 not hex", package("sha256", "$(touch /tmp/x)"), "not a sha256"),
    ("lock package size a string", package("size", "9"), "size"),
    ("lock package with more keys", package("postinst", "rm -rf /"), "must have exactly"),
    ("a QEMU in files, wrong sha256", evil_qemu_named_in_files, "changed since the run"),
    ("a QEMU added to the options", evil_qemu_in_options, "options: not the command line"),
    ("a QEMU in the spec", qemu_key_in_spec, "unknown ['qemu']"),
    ("an output directory in the spec", spec_field("out", "/etc"), "unknown ['out']"),
    ("an unknown arch", spec_field("arch", "sparc"), "--arch sparc"),
    ("l1_smp a string", spec_field("l1_smp", "2"), "spec.l1_smp"),
    ("snapshot a number", spec_field("snapshot", 1), "spec.snapshot"),
    ("l1_smp a bool", spec_field("l1_smp", True), "spec.l1_smp"),
    ("a negative duration", lambda d, r: d["spec"]["drive"].update(duration=-5), "--duration -5"),
    ("a spec key missing", lambda d, r: d["spec"].pop("consumer"), "missing ['consumer']"),
    ("an unknown file role", lambda d, r: d["files"].update(script=d["files"]["kernel"]), "unknown role"),
    ("a relative kernel path", kernel_path("vmlinux"), "not an absolute"),
    ("a kernel path with ..", kernel_path("{root}/mine/../mine/vmlinux"), "normalised"),
    ("a kernel path with a newline", kernel_path("{root}/mine/vmlinux\nrm -rf /"), "printable"),
    ("a symlinked kernel", kernel_symlinked, "a symlink or a special file"),
    ("a changed kernel", kernel_changed, "changed since the run"),
    ("an unknown verdict", top("verdict", "MAYBE"), "verdict"),
    ("an older schema", top("schema_version", 1), "schema_version 1"),
    ("an extra top-level key", top("run", "rm -rf /"), "unknown or missing"),
    ("provided not an object", top("provided", ["QEMU 11.1.3"]), "provided"),
    ("a name that is a number", top("name", 7), "name"),
    ("options not a list", top("options", "--qemu /evil"), "options"),
]


def write_dir(root: Path, data: object) -> Path:
    run_dir = root / "theirs"
    run_dir.mkdir(exist_ok=True)
    (run_dir / INPUTS).write_text(json.dumps(data) if not isinstance(data, str) else data)
    return run_dir


def symlinked_inputs(root: Path) -> Path:
    run_dir = write_dir(root, genuine(root))
    (run_dir / INPUTS).rename(root / "outside" / "real.json")
    (run_dir / INPUTS).symlink_to(root / "outside" / "real.json")
    return run_dir


def fifo_inputs(root: Path) -> Path:
    run_dir = root / "theirs"
    run_dir.mkdir()
    os.mkfifo(run_dir / INPUTS)          # reading it would wait for ever
    return run_dir


def planted_rerun_dir(root: Path) -> Path:
    run_dir = write_dir(root, genuine(root))
    (root / "theirs" / "out").symlink_to(root / "outside")
    return run_dir


# (name, how the directory is made, extra arguments, what the one line names)
DIR_CASES: list[tuple[str, Callable[[Path], Path], tuple[str, ...], str]] = [
    ("inputs.json a symlink", symlinked_inputs, (), "not a regular file"),
    ("inputs.json a FIFO", fifo_inputs, (), "not a regular file"),
    ("inputs.json oversized", lambda r: write_dir(r, " " * (9 << 20)), (), "more than"),
    ("inputs.json not JSON", lambda r: write_dir(r, "{\"verdict\": "), (), "not JSON"),
    ("inputs.json a list", lambda r: write_dir(r, [1, 2]), (), "not dict"),
    ("--out onto a planted symlink", planted_rerun_dir, ("--out", "{root}/theirs/out"), "exists"),
]


def planted_hold(fields: dict) -> Callable[[Path], Path]:
    def make(root: Path) -> Path:
        run_dir = root / "theirs"
        run_dir.mkdir()
        rec = {"pid": os.getpid(), "until": 9e9, "control": str(root / "outside" / "hold.sock"),
               "verdict": "STALL", "l1_port": 22, "l2_port": None, "client_key": str(root / "outside" / "key"),
               "host_key": "ssh-ed25519 AAAA", **fields}
        (run_dir / "held.json").write_text(json.dumps(rec))
        return run_dir
    return make


# (name, held.json's fields, command, what the one line names)
HOLD_CASES = [
    ("control socket outside the run directory", {}, ("stop",), "not the control socket"),
    ("control socket another program's", {"control": "/run/systemd/private"}, ("monitor", "l0", "info"),
     "not the control socket"),
    ("a key that is not the rig's", {"client_key": "/etc/shadow"}, ("ssh", "l1", "true"), "not the control socket"),
    ("the pid of init", {"pid": 1}, ("stop",), "pid is out of range"),
    ("a port out of range", {"l1_port": 70000}, ("ssh", "l1", "true"), "out of range"),
    ("a host key with a newline", {"host_key": "ssh-ed25519 AAAA\n[x]:1 ssh-rsa B"}, ("ssh", "l1", "true"),
     "not an ssh-ed25519"),
    ("an extra key", {"command": "rm -rf /"}, ("stop",), "unknown or missing"),
]


def tree(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every path under root with its mode, size and mtime."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(dirpath) / name
            st = os.lstat(p)
            out[str(p.relative_to(root))] = (st.st_mode, st.st_size if not stat.S_ISDIR(st.st_mode) else 0,
                                             st.st_mtime_ns)
    return out


def refused(root: Path, args: list[str], needle: str, run_base: Path) -> None:
    before = tree(root)
    r = run_rig(*args, cache=root / "cache", env={"RIG_RUN_DIR": str(run_base)}, timeout=60)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("rig: error: "), (args, r.stderr)
    assert needle in lines[0], (needle, lines[0])
    assert tree(root) == before, f"{args}: the file system changed"
    assert not (root / "outside" / "RAN").exists(), f"{args}: the planted program ran"


def prepared(tmp_path: Path, name: str) -> Path:
    root = tmp_path / name.replace(" ", "-").replace("/", "-")
    (root / "outside").mkdir(parents=True)
    (root / "cache").mkdir()
    return root


def test_the_genuine_record_is_taken(tmp_path):
    """The corpus's starting point is one the rig accepts: each case below fails on its edit alone."""
    root = prepared(tmp_path, "genuine")
    inputs = Inputs.load(write_dir(root, genuine(root)))
    inputs.check_files()
    assert inputs.run_spec().kernel.kernel == root / "mine" / "vmlinux"


def test_every_crafted_result_directory_is_refused_and_nothing_is_written_or_run(tmp_path, short_tmp):
    jobs: list[tuple[Path, list[str], str]] = []
    for name, edit, needle in INPUTS_CASES:
        root = prepared(tmp_path, name)
        data = copy.deepcopy(genuine(root))
        edit(data, root)
        jobs.append((root, ["rerun", str(write_dir(root, data))], needle))
    for name, make, extra, needle in DIR_CASES:
        root = prepared(tmp_path, name)
        run_dir = make(root)
        jobs.append((root, ["rerun", str(run_dir), *(a.format(root=root) for a in extra)], needle))
    for name, fields, command, needle in HOLD_CASES:
        root = prepared(tmp_path, name)
        run_dir = planted_hold(fields)(root)
        jobs.append((root, [command[0], str(run_dir), *command[1:]], needle))
    assert len(jobs) >= 30
    with ThreadPoolExecutor(4) as pool:
        for f in [pool.submit(refused, root, args, needle, short_tmp) for root, args, needle in jobs]:
            f.result()

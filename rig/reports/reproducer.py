"""A reproducer in every result directory of `rig run`, and `rig rerun` that runs it.

inputs.json records the cell (the run's options, less where results go and how long to
hold) and every input by content: the user's files by path and sha256 (a kernel built from
a tree is recorded as the binary that ran), the rig's own by what it resolved (the L0 QEMU,
L1's kernel package and version). reproduce.sh calls `rig rerun` on its own directory, so a
result directory copied to another machine with the rig reruns there. Before anything
boots, a user's file that is missing or changed is named in one line; the rig's own inputs
come from the pinned package set (the cache fetches what it lacks) and, after the rerun,
any that resolved to another version is named beside the verdict.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict, cast

from rig.core import spec_json, untrusted
from rig.core.cache import Cache, sha256_file
from rig.core.errors import UserError
from rig.core.json_object import JsonObject
from rig.core.kinds import Outcome
from rig.core.spec import RunSpec

INPUTS = "inputs.json"
SCRIPT = "reproduce.sh"
LOCKS = "locks"                  # the cache's package locks (rig.debian.packages)
# Options of rig run that say where results go or how to look, not what is run.
NOT_REPLAYED = ("out", "hold", "detach", "confirm")


def kernel_files(spec: RunSpec, kernel_path: Path | None, modules_dir: Path | None) -> dict[str, Path]:
    """The user's kernel as the rerun gives it: the package, the files, or (from a tree) the
    binary and modules that were built and ran."""
    k = spec.kernel
    if k.deb:
        return {"kernel-deb": k.deb.resolve()}
    files: dict[str, Path] = {}
    if k.kernel or k.build:
        if kernel_path:
            files["kernel"] = kernel_path.resolve()
        modules = k.modules or modules_dir
        if modules:
            files["modules"] = modules.resolve()
    if spec.qemu:
        files["qemu"] = spec.qemu.resolve()
    return files


def digest(path: Path) -> str:
    """sha256 of a file, or of a directory's files (relative names and contents, in order)."""
    if path.is_file():
        return sha256_file(path)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(path)).encode() + b"\0" + sha256_file(f).encode() + b"\0")
    return h.hexdigest()


SCHEMA_VERSION = 2
MAX_INPUTS_BYTES = 8 << 20     # locks are about 100 KB
LOCK_PACKAGE = {"name": str, "version": str, "arch": str, "filename": str, "sha256": str, "size": int}
DEB_FILENAME = re.compile(r"pool/[A-Za-z0-9._+~-]+(/[A-Za-z0-9._+~-]+)*\.deb")
REFUSE = "refusing to rerun it: `rig rerun` takes the directory `rig run` wrote, unchanged"


class Provided(TypedDict, total=False):
    """What the rig itself provided to a run, compared after a rerun (None: not known)."""

    l0_qemu: str | None
    l0_qemu_sha256: str | None
    l1_image: str | None
    l1_kernel: str | None
    l1_kernel_package: dict[str, str] | None
    l1_vfio_intx_fix: bool | None


@dataclass(frozen=True)
class Inputs:
    name: str
    verdict: str
    spec: JsonObject                  # the cell as JSON (rig.core.spec_json): read back, never argv
    options: list[str]                    # the same as `rig run` options, for people (never read back)
    files: dict[str, dict[str, str]]      # role -> {path, sha256}
    provided: Provided                    # the rig's own: L0 QEMU, L1's kernel package
    rig_version: str
    recorded_at: str
    locks: JsonObject = field(default_factory=dict)   # the cache's package locks: exact versions, sha256
    schema_version: int = SCHEMA_VERSION

    def write(self, out: Path) -> None:
        (out / INPUTS).write_text(json.dumps(self.__dict__, indent=1) + "\n")
        script = out / SCRIPT
        script.write_text(reproduce_script(self, Path(sys.executable)))
        script.chmod(0o755)

    @classmethod
    def load(cls, run_dir: Path) -> Inputs:
        """A result directory's record, every value checked (it may be anyone's): one line
        naming what is wrong otherwise."""
        if not run_dir.is_dir():
            raise UserError(f"{run_dir}: no such results directory; give a directory `rig run` wrote")
        path = run_dir / INPUTS
        if not os.path.lexists(path):
            raise UserError(f"{run_dir}: not a result directory of `rig run` (no {INPUTS}); give one it wrote")
        data = untrusted.read_json(path, MAX_INPUTS_BYTES, REFUSE)
        try:
            return cls._checked(data)
        except UserError as e:
            raise UserError(f"{path}: {e}; {REFUSE}") from None

    @classmethod
    def _checked(cls, data: object) -> Inputs:
        d = untrusted.expect(data, dict, "the record")
        version = d.get("schema_version")
        if version != SCHEMA_VERSION:
            raise UserError(f"schema_version {version!r}, this rig reads {SCHEMA_VERSION} (a record of another "
                            "version of the rig: rerun its cell with `rig run` and the options its reproduce.sh "
                            "shows)")
        expected = set(cls.__dataclass_fields__)
        if set(d) != expected:
            raise UserError(f"keys {sorted(set(d) ^ expected)} unknown or missing")
        for key in ("name", "rig_version", "recorded_at"):
            untrusted.expect(d[key], str, key)
        if d["verdict"] not in tuple(Outcome):
            raise UserError(f"verdict: {str(d['verdict'])[:40]!r} is none of {', '.join(Outcome)}")
        options = untrusted.expect(d["options"], list, "options")
        for i, o in enumerate(options):
            untrusted.expect(o, str, f"options[{i}]")
        given = untrusted.expect(d["provided"], dict, "provided")      # only compared, never used
        provided = cast(Provided, {k: v for k, v in given.items() if k in Provided.__annotations__})
        inputs = cls(d["name"], d["verdict"], untrusted.expect(d["spec"], dict, "spec"), options,
                     checked_files(d["files"]), provided, d["rig_version"], d["recorded_at"],
                     checked_locks(d["locks"]))
        cell = spec_json.from_json(inputs.spec, {})      # the cell is one `rig run` takes (files: checked on use)
        if options != spec_json.to_argv(cell, inputs.file_paths()):
            raise UserError("options: not the command line of the recorded spec and files (edited?)")
        return inputs

    def file_paths(self) -> dict[str, Path]:
        return {role: Path(f["path"]) for role, f in self.files.items()}

    def run_spec(self) -> RunSpec:
        """The recorded cell with the user's files, validated as `rig run` validates it."""
        return spec_json.from_json(self.spec, self.file_paths())

    def check_files(self) -> None:
        """Each of the user's files where it was (itself, not a symlink to it), with the same
        content; else one line."""
        for role, f in self.files.items():
            path = Path(f["path"])
            if not os.path.lexists(path):
                raise UserError(f"--{role} {path}: the file the run used is not here (sha256 {f['sha256'][:16]}...); "
                                f"put it there, or edit {INPUTS} to where it is")
            untrusted.regular_file(path, f"--{role}", directory=role == "modules")
            if digest(path) != f["sha256"]:
                raise UserError(f"--{role} {path}: changed since the run (sha256 {f['sha256'][:16]}... then, "
                                f"{digest(path)[:16]}... now); restore that file to rerun the same cell")


def checked_files(value: object) -> dict[str, dict[str, str]]:
    """role -> {path, sha256}: a role the rig records, an absolute path, a sha256."""
    files: dict[str, dict[str, str]] = untrusted.expect(value, dict, "files")
    for role, f in files.items():
        if role not in spec_json.FILE_ROLES:
            raise UserError(f"files: unknown role {str(role)[:40]!r}; the rig records only "
                            f"{', '.join(spec_json.FILE_ROLES)}")
        entry = untrusted.expect(f, dict, f"files.{role}")
        if set(entry) != {"path", "sha256"}:
            raise UserError(f"files.{role}: must have exactly path and sha256")
        untrusted.absolute_path(entry["path"], f"files.{role}.path")
        untrusted.sha256_hex(entry["sha256"], f"files.{role}.sha256")
    return files


def checked_locks(value: object) -> JsonObject:
    """Package locks: plain file names, and in each only exact packages of Debian's pool."""
    locks: JsonObject = untrusted.expect(value, dict, "locks")
    for name, lock in locks.items():
        where = f"locks.{str(name)[:60]}"
        if not untrusted.plain_name(name, "locks: a lock name").endswith(".json"):
            raise UserError(f"{where}: a lock's name ends in .json")
        lock = untrusted.expect(lock, dict, where)
        if set(lock) != {"resolved_at", "packages"}:
            raise UserError(f"{where}: must have exactly resolved_at and packages")
        untrusted.expect(lock["resolved_at"], str, f"{where}.resolved_at")
        for i, pkg in enumerate(untrusted.expect(lock["packages"], list, f"{where}.packages")):
            checked_package(pkg, f"{where}.packages[{i}]")
    return locks


def checked_package(value: object, where: str) -> None:
    pkg = untrusted.expect(value, dict, where)
    if set(pkg) != set(LOCK_PACKAGE):
        raise UserError(f"{where}: must have exactly {', '.join(LOCK_PACKAGE)}")
    for key, typ in LOCK_PACKAGE.items():
        untrusted.expect(pkg[key], typ, f"{where}.{key}")
    if not DEB_FILENAME.fullmatch(pkg["filename"]) or ".." in pkg["filename"]:
        raise UserError(f"{where}.filename: {pkg['filename'][:80]!r} is not a .deb in Debian's pool")
    untrusted.sha256_hex(pkg["sha256"], f"{where}.sha256")


def record(out: Path, spec: RunSpec, name: str, verdict: str, kernel_path: Path | None,
           modules_dir: Path | None, result: JsonObject, cache: Cache, rig_version: str) -> Inputs:
    files = kernel_files(spec, kernel_path, modules_dir)
    inputs = Inputs(name, verdict, spec_json.to_json(spec, result.get("device")),
                    spec_json.to_argv(spec, files, result.get("device")),
                    {role: {"path": str(p), "sha256": digest(p)} for role, p in files.items()},
                    provided_of(result), rig_version, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    recorded_locks(cache))
    inputs.write(out)
    return inputs


def recorded_locks(cache: Cache) -> JsonObject:
    """Every package lock in the cache (about 100 KB): the Debian versions and sha256 the
    images, the vfio rebuild and the private QEMU were made from."""
    return {p.name: json.loads(p.read_text()) for p in sorted((cache.root / LOCKS).glob("*.json"))}


def seed_locks(inputs: Inputs, cache: Cache) -> list[str]:
    """The run's locks into a cache that has none of that name, so its packages are fetched
    at the recorded versions (checked by sha256); a cache that resolved the same set to
    other versions keeps its own, and that is said."""
    notes = []
    for name, lock in inputs.locks.items():
        have = cache.read_json(LOCKS, name)
        if have is None:
            cache.write_json(lock, LOCKS, name)
            notes.append(f"package set {name.removesuffix('.json')}: the run's versions, fetched as recorded")
        elif have != lock:
            notes.append(f"package set {name.removesuffix('.json')}: this cache resolved other versions than the "
                         f"run's (kept; the rerun may differ)")
    return notes


def provided_of(result: JsonObject) -> Provided:
    """What the rig itself provided, by content where it can (compared after a rerun): the
    QEMU binary's sha256 and version, L1's image key (the content key of everything it is
    built from), L1's kernel and package version, the fix state read in the binary."""
    l0, l1 = result.get("l0") or {}, result.get("l1") or {}
    version = str(l0.get("qemu") or "").partition(" ")[2] or None      # less the path: another machine's differs
    return {"l0_qemu": version, "l0_qemu_sha256": l0.get("qemu_sha256") or None,
            "l1_image": l1.get("image") or None, "l1_kernel": l1.get("kernel"),
            "l1_kernel_package": l1.get("kernel_package"), "l1_vfio_intx_fix": l1.get("vfio_intx_fix")}


def comment(text: str) -> str:
    """text as one line of a shell comment: a newline or any other control character in a
    path is shown escaped, never ends the comment."""
    return text.encode("unicode_escape").decode("ascii")


def reproduce_script(inputs: Inputs, python: Path) -> str:
    command = comment(shlex.join(["rig", "run", *inputs.options]))
    files = "".join(f"#   {role}: {comment(f['path'])} (sha256 {f['sha256']})\n" for role, f in inputs.files.items()) \
        or "#   (none of yours: the rig's own, as pinned)\n"
    return (f"#!/bin/sh\n"
            f"# Reruns {comment(inputs.name)} (verdict then: {inputs.verdict}; intx-rig {comment(inputs.rig_version)},"
            f" {comment(inputs.recorded_at)}):\n#   {command}\n"
            f"# with the same inputs, checked by content before anything boots:\n{files}"
            "# `rig rerun` says whether the verdict matched; more runs: ./reproduce.sh --repeat 3\n"
            "# (the rig's global options, such as --cache-dir DIR, in $RIG_OPTS)\n"
            f"PY=${{RIG_PYTHON:-{shlex.quote(str(python))}}}\n"
            'if [ -x "$PY" ] && "$PY" -c "import rig" 2>/dev/null; then\n'
            '    exec "$PY" -m rig $RIG_OPTS rerun "$(dirname "$0")" "$@"\n'
            "fi\n"
            'exec rig $RIG_OPTS rerun "$(dirname "$0")" "$@"    # the rig installed on this machine\n')

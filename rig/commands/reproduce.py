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

import argparse
import hashlib
import json
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rig import __version__
from rig.commands.common import Subparsers
from rig.core.cache import Cache, sha256_file
from rig.core.errors import UserError
from rig.core.spec import RunSpec

INPUTS = "inputs.json"
SCRIPT = "reproduce.sh"
RERUNS = "rerun.json"
LOCKS = "locks"                  # the cache's package locks (rig.debian.packages)
# Options of rig run that say where results go or how to look, not what is run.
NOT_REPLAYED = ("out", "hold", "detach", "confirm")


def options_of(spec: RunSpec, kernel_files: dict[str, Path], device: str | None = None) -> list[str]:
    """rig run's options for the same cell (the inverse of rig.commands.run.spec_of); the
    device the run chose when it was not asked for (the default may change)."""
    opts = ["--arch", spec.arch, "--machine", spec.machine_profile.name, "--ic", spec.interrupt_controller,
            "--consumer", str(spec.consumer), "--l1-vfio", str(spec.l1_vfio), "--l2-accel", str(spec.l2_accel),
            "--l1-smp", str(spec.l1_smp), "--duration", f"{spec.drive.duration:g}",
            "--stall-window", f"{spec.drive.stall_window:g}", "--pass-after", str(spec.drive.pass_after)]
    if spec.device or device:
        opts += ["--device", str(spec.device or device)]
    if spec.boot_timeout is not None:
        opts += ["--boot-timeout", f"{spec.boot_timeout:g}"]
    if not spec.snapshot:
        opts.append("--no-snapshot")
    for role, path in kernel_files.items():
        opts += [f"--{role}", str(path)]
    return opts


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


@dataclass(frozen=True)
class Inputs:
    name: str
    verdict: str
    options: list[str]
    files: dict[str, dict[str, str]]      # role -> {path, sha256}
    provided: dict[str, Any]              # the rig's own: L0 QEMU, L1's kernel package
    rig_version: str
    recorded_at: str
    locks: dict[str, Any] = field(default_factory=dict)   # the cache's package locks: exact versions, sha256

    def write(self, out: Path) -> None:
        (out / INPUTS).write_text(json.dumps(self.__dict__, indent=1) + "\n")
        script = out / SCRIPT
        script.write_text(reproduce_script(self, Path(sys.executable)))
        script.chmod(0o755)

    @classmethod
    def load(cls, run_dir: Path) -> Inputs:
        path = run_dir / INPUTS
        if not run_dir.is_dir():
            raise UserError(f"{run_dir}: no such results directory; give a directory `rig run` wrote")
        if not path.is_file():
            raise UserError(f"{run_dir}: not a result directory of `rig run` (no {INPUTS}); give one it wrote")
        try:
            return cls(**json.loads(path.read_text()))
        except (ValueError, TypeError) as e:
            raise UserError(f"{path}: not a record of a run's inputs ({e})") from e

    def check_files(self) -> None:
        """Each of the user's files where it was, with the same content; else one line."""
        for role, f in self.files.items():
            path = Path(f["path"])
            if not path.exists():
                raise UserError(f"--{role} {path}: the file the run used is not here (sha256 {f['sha256'][:16]}...); "
                                f"put it there, or edit {INPUTS} to where it is")
            if digest(path) != f["sha256"]:
                raise UserError(f"--{role} {path}: changed since the run (sha256 {f['sha256'][:16]}... then, "
                                f"{digest(path)[:16]}... now); restore that file to rerun the same cell")


def record(out: Path, spec: RunSpec, name: str, verdict: str, kernel_path: Path | None,
           modules_dir: Path | None, result: dict[str, Any], cache: Cache) -> Inputs:
    files = kernel_files(spec, kernel_path, modules_dir)
    inputs = Inputs(name, verdict, options_of(spec, files, result.get("device")),
                    {role: {"path": str(p), "sha256": digest(p)} for role, p in files.items()},
                    provided_of(result), __version__, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    recorded_locks(cache))
    inputs.write(out)
    return inputs


def recorded_locks(cache: Cache) -> dict[str, Any]:
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


def provided_of(result: dict[str, Any]) -> dict[str, Any]:
    """What the rig itself provided, by content where it can (compared after a rerun): the
    QEMU binary's sha256 and version, L1's image key (the content key of everything it is
    built from), L1's kernel and package version, the fix state read in the binary."""
    l0, l1 = result.get("l0") or {}, result.get("l1") or {}
    version = str(l0.get("qemu") or "").partition(" ")[2] or None      # less the path: another machine's differs
    return {"l0_qemu": version, "l0_qemu_sha256": l0.get("qemu_sha256") or None,
            "l1_image": l1.get("image") or None, "l1_kernel": l1.get("kernel"),
            "l1_kernel_package": l1.get("kernel_package"), "l1_vfio_intx_fix": l1.get("vfio_intx_fix")}


def reproduce_script(inputs: Inputs, python: Path) -> str:
    command = shlex.join(["rig", "run", *inputs.options])
    files = "".join(f"#   {role}: {f['path']} (sha256 {f['sha256']})\n" for role, f in inputs.files.items()) \
        or "#   (none of yours: the rig's own, as pinned)\n"
    return (f"#!/bin/sh\n"
            f"# Reruns {inputs.name} (verdict then: {inputs.verdict}; intx-rig {inputs.rig_version},"
            f" {inputs.recorded_at}):\n#   {command}\n"
            f"# with the same inputs, checked by content before anything boots:\n{files}"
            "# `rig rerun` says whether the verdict matched; more runs: ./reproduce.sh --repeat 3\n"
            "# (the rig's global options, such as --cache-dir DIR, in $RIG_OPTS)\n"
            f"PY=${{RIG_PYTHON:-{shlex.quote(str(python))}}}\n"
            'if [ -x "$PY" ] && "$PY" -c "import rig" 2>/dev/null; then\n'
            '    exec "$PY" -m rig $RIG_OPTS rerun "$(dirname "$0")" "$@"\n'
            "fi\n"
            'exec rig $RIG_OPTS rerun "$(dirname "$0")" "$@"    # the rig installed on this machine\n')


# -- rig rerun -------------------------------------------------------------------------
def add_parser(sub: Subparsers) -> None:
    p = sub.add_parser("rerun", help="run a result directory's cell again with the same inputs; "
                                     "exit 0 if every verdict matched, 1 if one did not, 125 on an ERROR")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a results directory of `rig run` (its inputs.json)")
    p.add_argument("--repeat", type=int, default=1, metavar="N", help="run it N times")
    p.add_argument("--out", help="where the reruns go (default RUN_DIR/rerun-<time>)")
    p.set_defaults(handler=cmd_rerun)


def cmd_rerun(args: argparse.Namespace) -> int:
    from rig.commands.run import spec_from_options
    from rig.core.errors import SpecError
    from rig.core.spec import MAX_REPEAT
    run_dir = Path(args.run_dir)
    inputs = Inputs.load(run_dir)
    if not 1 <= args.repeat <= MAX_REPEAT:
        raise SpecError("--repeat", f"--repeat {args.repeat}: must be a whole number from 1 to {MAX_REPEAT}")
    inputs.check_files()
    out = Path(args.out) if args.out else run_dir / f"rerun-{time.strftime('%Y%m%d-%H%M%S')}"
    spec = spec_from_options(inputs.options)
    print(f"rerunning {inputs.name} (verdict then: {inputs.verdict}) {args.repeat} time(s); results in {out}")
    from rig.commands.common import session
    from rig.commands.run_chain import run_once, user_kernel
    s = session(args, qemu=spec.qemu)
    for note in seed_locks(inputs, s.cache):
        print(f"  {note}")
    with tempfile.TemporaryDirectory(prefix="intx-rig-kernel-") as unpack:
        kernel = user_kernel(spec, Path(unpack), s)
        verdicts = [str(run_once(s, spec, kernel, out / f"run-{i}").verdict) for i in range(1, args.repeat + 1)]
    return judge(inputs, verdicts, out)


def judge(inputs: Inputs, verdicts: list[str], out: Path) -> int:
    """Print and record whether the reruns matched; the exit status."""
    matched = all(v == inputs.verdict for v in verdicts)
    differences = provided_differences(inputs, out)
    (out / RERUNS).write_text(json.dumps({"recorded": inputs.verdict, "verdicts": verdicts, "matched": matched,
                                          "provided_differences": differences}, indent=1) + "\n")
    for d in differences:
        print(f"  not the same as the run's: {d}")
    if matched:
        print(f"reproduced: {len(verdicts)} of {len(verdicts)} rerun(s) gave {inputs.verdict}, as recorded")
        return 0
    print(f"NOT reproduced: the run gave {inputs.verdict}, the rerun(s) {', '.join(verdicts)}")
    return 125 if "ERROR" in verdicts else 1


def provided_differences(inputs: Inputs, out: Path) -> list[str]:
    now: dict[str, Any] = {}
    for result in sorted(out.glob("run-*/result.json")):
        now = provided_of(json.loads(result.read_text()))
        break
    return [f"{k}: {inputs.provided.get(k)!r} then, {v!r} now" for k, v in now.items()
            if v is not None and inputs.provided.get(k) is not None and v != inputs.provided.get(k)]

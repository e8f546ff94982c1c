"""`rig rerun RUN_DIR`: a result directory's cell run again with the same inputs, and whether
the verdict matched (exit 0), did not (1), or a rerun ended in ERROR (125).

The directory may be anyone's: its inputs.json is checked whole before anything is written
or run (rig.reports.reproducer.Inputs.load): the cell is read back as a spec from JSON,
never as a command line; the only paths that reach it are the user's files, each checked
by sha256 where it is; lock names are plain file names. Results go to a new directory.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from rig.commands.common import Subparsers, session
from rig.commands.run_pipeline import run_once, user_kernel
from rig.core.errors import SpecError, UserError
from rig.core.spec import MAX_REPEAT, writable_dir
from rig.reports.reproducer import Inputs, Provided, provided_of, seed_locks

RERUNS = "rerun.json"


def add_parser(sub: Subparsers) -> None:
    p = sub.add_parser("rerun", help="run a result directory's cell again with the same inputs; "
                                     "exit 0 if every verdict matched, 1 if one did not, 125 on an ERROR")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a results directory of `rig run` (its inputs.json)")
    p.add_argument("--repeat", type=int, default=1, metavar="N", help="run it N times")
    p.add_argument("--out", help="where the reruns go, a new directory (default RUN_DIR/rerun-<time>)")
    p.set_defaults(handler=cmd_rerun)


def new_directory(option: str, path: Path) -> Path:
    """A directory made now for this rerun alone: never one that exists (nor a symlink
    planted under its name)."""
    if os.path.lexists(path):
        raise UserError(f"{option} {path}: exists; give a new directory for the rerun's results")
    writable_dir(option, path)
    try:
        path.mkdir(parents=True)
    except FileExistsError:
        raise UserError(f"{option} {path}: exists; give a new directory for the rerun's results") from None
    return path


def cmd_rerun(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    if not 1 <= args.repeat <= MAX_REPEAT:
        raise SpecError("--repeat", f"--repeat {args.repeat}: must be a whole number from 1 to {MAX_REPEAT}")
    inputs = Inputs.load(run_dir)
    inputs.check_files()
    spec = inputs.run_spec()
    out = new_directory("--out", Path(args.out) if args.out else run_dir / f"rerun-{time.strftime('%Y%m%d-%H%M%S')}")
    print(f"rerunning {inputs.name} (verdict then: {inputs.verdict}) {args.repeat} time(s); results in {out}")
    for role, f in inputs.files.items():
        print(f"  --{role} {f['path']} (sha256 {f['sha256'][:16]}..., as recorded)")
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
    now = Provided()
    for result in sorted(out.glob("run-*/result.json")):
        now = provided_of(json.loads(result.read_text()))
        break
    return [f"{k}: {inputs.provided.get(k)!r} then, {v!r} now" for k, v in now.items()
            if v is not None and inputs.provided.get(k) is not None and v != inputs.provided.get(k)]

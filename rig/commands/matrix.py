"""`rig matrix`: every selected cell against its expected verdict (exit 1 on any disagreement).

With --kernel-tree, the user's kernel is built for each arch the chosen cells need, before
any runs, and every cell runs it, expected to PASS (rig.matrix.cells)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rig.commands.common import Subparsers, optional_path, session
from rig.commands.kernel import add_build_options, build_dir_for, build_specs_of
from rig.core import timeouts
from rig.core.logs import LogFile
from rig.core.spec import PASS_AFTER, DriveSpec, KernelBuildSpec, MatrixSpec
from rig.core.targets import profile
from rig.host.capacity import parallel_chains
from rig.matrix import cells as matrix_cells
from rig.matrix import durations
from rig.matrix.summary import CellSummary, fix_label, side_by_side
from rig.reports import coverage

if TYPE_CHECKING:
    from rig.chain.session import Session


def add_parser(sub: Subparsers) -> None:
    ma = sub.add_parser("matrix", help="every cell against its expected verdict (exit 1 on any disagreement)")
    ma.add_argument("--repeat", type=int, default=1, help="runs per cell")
    ma.add_argument("--shard", help="K/N: run the K-th of N deterministic shares of the cells")
    ma.add_argument("--slow", action="store_true", help="include TCG-inside-TCG L2 cells")
    ma.add_argument("--scenarios", action="store_true",
                    help="include the scenario cells: every INTx path beyond the flow, in fast mode "
                         "(docs/scenarios.md)")
    ma.add_argument("--cells", help="only cells whose id matches one of these comma-separated "
                                    "globs, e.g. 'ppc64-pseries-xive-*,*-userspace'")
    ma.add_argument("--jobs", default="auto",
                    help="runs at a time (default auto: one per core, as memory allows; RIG_JOBS)")
    ma.add_argument("--list", action="store_true", help="list the cells and expectations, run nothing")
    ma.add_argument("--duration", type=float, default=timeouts.DURATION_S)
    ma.add_argument("--stall-window", type=float, default=None,
                    help="seconds (default 2 in fast mode, 3 with L2 under KVM, 5 under TCG)")
    ma.add_argument("--pass-after", type=int, default=PASS_AFTER,
                    help=f"a PASS once this many interrupts were serviced (default {PASS_AFTER}; 0: drive "
                         "the whole --duration)")
    ma.add_argument("--out", help="results directory (default results/matrix-<time>)")
    ma.add_argument("--no-snapshot", dest="snapshot", action="store_false",
                    help="every run boots L1 and saves no snapshot (one-off kernels: their snapshots "
                         "would only push useful ones out of the cache)")
    ma.add_argument("--hold-unexpected", type=float, nargs="?", const=timeouts.HOLD_MINUTES, metavar="MINUTES",
                    help="a run whose verdict is not its cell's expected one keeps its chain up for a look "
                         "(`rig ssh RUN_DIR l1`; its held.json says it is held) until `rig stop` or MINUTES "
                         f"(default {timeouts.HOLD_MINUTES:g}); the matrix waits for it")
    add_build_options(ma, several=True)
    ma.set_defaults(handler=cmd_matrix)


def jobs_of(value: str) -> int | None:
    if value == "auto":
        return None
    try:
        return int(value)
    except ValueError:
        return -1       # rejected by MatrixSpec.validate with the allowed range


def spec_of(args: argparse.Namespace) -> MatrixSpec:
    return MatrixSpec(repeat=args.repeat, jobs=jobs_of(args.jobs), shard=MatrixSpec.parse_shard(args.shard),
                      cells=MatrixSpec.parse_cells(args.cells), slow=args.slow, scenarios=args.scenarios,
                      drive=DriveSpec(args.duration, args.stall_window, args.pass_after),
                      out=optional_path(args.out), snapshot=args.snapshot,
                      hold_unexpected=args.hold_unexpected).validate()


def cmd_matrix(args: argparse.Namespace) -> int:
    from rig.matrix.runner import run_matrix
    from rig.matrix.summary import table
    from rig.matrix.tally import tally_line, write_tally
    spec = spec_of(args)
    builds = build_specs_of(args)
    labels = matrix_cells.tree_labels([b.tree for b in builds])
    every = matrix_cells.all_cells(own={} if builds else None, trees=labels)
    if args.list:
        chosen = matrix_cells.select(every, MatrixSpec(slow=True, scenarios=True, cells=spec.cells,
                                                       shard=spec.shard))
        picked = set(matrix_cells.select(every, spec)) if spec.cells or spec.shard is None else set(chosen)
        width = max(len(c.id) for c in every)
        for c in every:
            state = c.unavailable() or ("runs" if c in chosen and c in picked
                                        else "slow: --slow" if c.slow and not spec.slow
                                        else "scenario: --scenarios" if c.scenario != "flow" and not spec.scenarios
                                        else "not picked (--shard, --cells)")
            print(f"{c.id:{width}} {c.expectation().verdict:6} {state}")
        return 0
    cells = matrix_cells.select(every, spec)
    for c in cells:
        c.spec(spec.drive)          # every run's spec valid before the first starts
    s = session(args)
    out = spec.out or Path(f"results/matrix-{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    jobs = spec.jobs or parallel_chains()
    with LogFile(out):
        if builds:
            cells = own_kernel_cells(dict(zip(labels, builds, strict=True)), cells, s)
        s.progress.step(f"{len(cells)} cells x {spec.repeat} runs, {jobs} at a time")
        results = run_matrix(cells, out, spec.repeat, s.cache_dir, spec.drive, s.progress, jobs,
                             snapshot=spec.snapshot, hold_unexpected=spec.hold_unexpected,
                             start_order=durations.longest_first(cells, durations.read(s.cache)))
        durations.record(s.cache, results)
    print(table(results))
    if len(builds) > 1:
        print(side_by_side(results, labels))
    print(tally_line(write_tally(out, results)))
    if any(b.coverage for b in builds):
        suite = coverage.of_runs(out, [Path(r.out) for c in results for r in c.runs])
        print(coverage.describe(suite).replace("coverage:", "coverage of every run:", 1))
    print(f"results: {out}/report.html, {out}/matrix.json, {out}/junit.xml, {out}/results.ktap")
    return report(results)


def own_kernel_cells(builds: dict[str, KernelBuildSpec], cells: list[matrix_cells.Cell],
                     s: Session) -> list[matrix_cells.Cell]:
    """Each tree's kernel built for every arch the cells need (one after the other: each
    build uses every core), then the cells with it. `builds` by label (one tree: its label
    is not in the cells' ids)."""
    from dataclasses import replace

    from rig.kernel.build import build as build_kernel
    arches = sorted({c.arch for c in cells})
    own = {}
    for label, build in builds.items():
        for arch in arches:
            prof = profile(arch)
            built = build_kernel(build, prof, s.cache.root, s.progress,
                                 build_dir_for(build, prof, len(arches) > 1))
            for line in built.summary():
                s.progress.note(line)
            kernel = matrix_cells.OwnKernel(str(built.kernel), str(built.modules) if built.modules else None)
            own[(label if len(builds) > 1 else "", arch)] = kernel
    return [replace(c, kernel=own[(c.tree, c.arch)]) for c in cells]


def report(results: list[CellSummary]) -> int:
    for r in results:
        for d in r.l2_restarted:
            print(f"L2 RESTARTED {r.id}: its L2 failed to boot {d.l2_boot_failures} time(s) before "
                  f"the drive (result.json chain.l2_boot_failures); verdict {d.verdict}; logs in {d.out}")
    bad = [r for r in results if r.disagreements]
    for r in bad:
        for d in r.disagreements:
            path = f"; interrupt path: {d.explanation}" if d.explanation else ""
            print(f"DISAGREEMENT {r.id}: expected {r.expected}, got {d.verdict} "
                  f"({d.reason}{path}); L1 vfio: {fix_label(d.vfio_intx_fix)}; logs in {d.out}")
    return 1 if bad else 0

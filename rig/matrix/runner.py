"""`rig matrix`'s runner: every selected cell (rig.matrix.cells) `repeat` times, side by
side as the machine allows. Each run is a real `rig run` in a subprocess (its own results
directory and logs), so a disagreement comes with everything needed to look at it.
Nothing is retried away. Results are read back through rig.reports.result.RunResult.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rig.core import timeouts
from rig.core.kinds import Outcome
from rig.core.progress import Progress
from rig.core.spec import DriveSpec
from rig.host.children import own_session_ends_with_parent, wait_or_kill
from rig.host.rundir import reap_stale
from rig.matrix.cells import Cell
from rig.matrix.summary import CellSummary, RunOutcome, write_json, write_ktap, write_matrix_junit
from rig.reports.html import write_matrix_report
from rig.reports.result import RunResult

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]


class Runs:
    """The `rig run` processes in flight, so that Ctrl-C on the matrix reaches them: each is
    sent SIGINT (it cleans up its guests and exits 130) and no new one starts."""

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self._procs: set[subprocess.Popen[str]] = set()
        self._lock = threading.Lock()

    def start(self, cmd: list[str]) -> subprocess.Popen[str] | None:
        with self._lock:
            if self.stopping.is_set():
                return None
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True, preexec_fn=own_session_ends_with_parent())
            self._procs.add(proc)
            return proc

    def done(self, proc: subprocess.Popen[str]) -> None:
        with self._lock:
            self._procs.discard(proc)

    def interrupt(self) -> None:
        with self._lock:
            self.stopping.set()
            for proc in self._procs:
                proc.send_signal(signal.SIGINT)

    def wait_or_kill(self, timeout: float) -> None:
        """After interrupt(): wait for the runs to clean up and end; kill one that has not
        by then (its QEMUs die with it; its run directory is reaped after)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            procs = list(self._procs)
        for proc in procs:
            stop(proc, max(0.0, deadline - time.monotonic()))


def stop(proc: subprocess.Popen[str], timeout: float) -> None:
    """Wait for an interrupted run to end; SIGKILL it if it has not within timeout."""
    if not wait_or_kill(proc, timeout):
        log.warning("run %d did not end %.0f s after its interrupt: killed", proc.pid, timeout)


def run_cell(cell: Cell, out: Path, cache_dir: Path | None, drive: DriveSpec,
             runs: Runs, snapshot: bool = True, hold_unexpected: float | None = None) -> RunOutcome | None:
    """One `rig run` of the cell; None if the matrix was interrupted before or during it.
    hold_unexpected: minutes a run whose verdict is not the cell's keeps its chain up."""
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "rig", "-q"] + (["--cache-dir", str(cache_dir)] if cache_dir else [])
    cmd += cell.run_args(drive) + ["--out", str(out)] + ([] if snapshot else ["--no-snapshot"])
    if hold_unexpected is not None:
        cmd += ["--expect", cell.expectation().verdict.value, "--hold-unexpected", f"{hold_unexpected:g}"]
    t0 = time.monotonic()
    proc = runs.start(cmd)
    if proc is None:
        return None
    try:
        stdout, stderr = proc.communicate(timeout=timeouts.MATRIX_RUN_S + 60 * (hold_unexpected or 0))
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)     # it cleans up; what it wrote says how far it got
        stop(proc, timeouts.MATRIX_RUN_STOP_S)
        stdout, stderr = proc.communicate()
    finally:
        runs.done(proc)
    seconds = time.monotonic() - t0
    # What the run printed (its own trail is its rig.log beside it).
    (out / "rig-output.log").write_text(stdout + stderr)
    if runs.stopping.is_set():
        return None
    try:
        result = RunResult.load(out)
    except (OSError, ValueError, KeyError, TypeError) as e:
        log.info("%s: no result read (%s)", out, e)
        last = (stderr.strip().splitlines() or ["no output"])[-1]
        return RunOutcome(Outcome.ERROR, seconds, str(out), f"rig exited {proc.returncode}: {last}")
    failures = len(result.chain.l2_boot_failures) if result.chain else 0
    path = result.interrupt_path
    return RunOutcome(result.verdict.outcome, seconds, str(out), result.verdict.reason, failures,
                      path.explanation if path and path.stopped_layer else "",
                      result.facts.l1.vfio_intx_fix if result.facts.l1 else None,
                      path.deliveries_per_serviced if path else None)


def run_matrix(cells: list[Cell], out: Path, repeat: int, cache_dir: Path | None,
               drive: DriveSpec, progress: Progress, jobs: int = 1,
               snapshot: bool = True, hold_unexpected: float | None = None,
               start_order: list[Cell] | None = None) -> list[CellSummary]:
    """Every cell `repeat` times, `jobs` runs at a time. Runs go round by round (every
    cell's first run, then every cell's second), so a cell's repeats are spread over the
    whole matrix run rather than bunched together; within a round in `start_order` (default:
    the cells'). matrix.json, in the cells' order, is rewritten as runs end."""
    tasks = [(cell, n) for n in range(repeat) for cell in (start_order or cells)]
    outcomes: dict[str, list[RunOutcome | None]] = {c.id: [None] * repeat for c in cells}
    lock = threading.Lock()
    runs = Runs()

    def one(i: int, cell: Cell, n: int) -> None:
        if runs.stopping.is_set():
            return
        progress.step(f"[{i}/{len(tasks)}] {cell.id} run {n + 1}/{repeat}")
        outcome = run_cell(cell, out / cell.id / f"run{n + 1}", cache_dir, drive, runs, snapshot, hold_unexpected)
        if outcome is None:
            return
        progress.note(f"{cell.id} run {n + 1}: {outcome.verdict} in {outcome.seconds:.0f} s")
        with lock:
            outcomes[cell.id][n] = outcome
            write_json(out, cells, outcomes, jobs)

    pool = ThreadPoolExecutor(max_workers=max(1, jobs))
    try:
        for f in [pool.submit(one, i, cell, n) for i, (cell, n) in enumerate(tasks, 1)]:
            f.result()
    except KeyboardInterrupt:
        # Ctrl-C (or SIGTERM): the runs in flight are interrupted and clean up; the ones
        # that finished stay in matrix.json.
        progress.step("interrupted: stopping the runs in flight")
        runs.interrupt()
        runs.wait_or_kill(timeouts.MATRIX_RUN_STOP_S)
        pool.shutdown(wait=True, cancel_futures=True)
        reap_stale()        # the run directories of a run that had to be killed
        with lock:
            write_json(out, cells, outcomes, jobs)
        raise
    pool.shutdown()
    results = write_json(out, cells, outcomes, jobs)
    write_matrix_junit(out / "junit.xml", results)
    write_ktap(out / "results.ktap", cells, outcomes)
    write_matrix_report(out, [r.to_json() for r in results])
    return results



"""The verdict matrix: every cell the rig can run, its expected verdict written down once
(EXPECTED, with the reason), and a runner that measures the rig's own agreement with it.

A cell is (arch, interrupt controller, L1 vfio, device, consumer). Each run of a cell is a
real `rig run` in a subprocess (its own results directory and logs), so a disagreement
comes with everything needed to look at it. Nothing is retried away.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import signal
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from .errors import UserError
from .runtime import own_session_ends_with_parent
from .verdict import PASS, STALL

ROOT = Path(__file__).resolve().parent.parent

ARCH_ICS = {"ppc64": ("xive", "xics"), "x86_64": ("ioapic",)}
VFIO = ("fixed", "unfixed")
DEVICES = ("pci-serial", "legacy")
CONSUMERS = ("l2-kvm", "l2-tcg", "userspace")


@dataclass(frozen=True)
class Expectation:
    arch: str
    ic: str
    vfio: str          # "*" matches both
    verdict: str
    reason: str

    def matches(self, cell: "Cell") -> bool:
        return (self.arch, self.ic) == (cell.arch, cell.ic) and self.vfio in ("*", cell.vfio)


# The one table of expected verdicts (DESIGN.md sections 1 and 2). The device and the consumer
# do not change them: both devices take vfio's non-2.3 INTx path, and every consumer unmasks
# the same way; what differs is L0's interrupt controller and whether L1's vfio has the fix.
EXPECTED = (
    Expectation("ppc64", "xive", "unfixed", STALL,
                "lazy disable_irq_nosync() never masks at XIVE; the source stays pending without "
                "EOI and every later assertion is swallowed: one interrupt, then none"),
    Expectation("ppc64", "xive", "fixed", PASS,
                "IRQ_DISABLE_UNLAZY masks the source at XIVE; the unmask and EOI let the next one in"),
    Expectation("ppc64", "xics", "*", PASS,
                "XICS re-sends a still-asserted LSI on unmask and on EOI: no stall, fix or not"),
    Expectation("x86_64", "ioapic", "*", PASS,
                "the IO-APIC re-delivers a still-asserted level interrupt on EOI and unmask"),
)


@dataclass(frozen=True)
class Cell:
    arch: str
    ic: str
    vfio: str
    device: str
    consumer: str

    @property
    def id(self) -> str:
        return f"{self.arch}-{self.ic}-{self.vfio}-{self.device}-{self.consumer}"

    def expectation(self) -> Expectation:
        return next(e for e in EXPECTED if e.matches(self))

    def unavailable(self) -> str | None:
        """Why this cell cannot run with the stock parts, or None."""
        if self.device == "legacy" and self.arch == "ppc64":
            return ("vfio-user on pseries: QEMU 11.1.3 aborts at machine reset, and Linux on "
                    "pseries never probes INTx masking (docs/findings/)")
        return None

    @property
    def slow(self) -> bool:
        return self.consumer == "l2-tcg"   # TCG inside TCG: minutes to boot L2

    def run_args(self, duration: float, pass_after: int) -> list[str]:
        args = ["run", "--arch", self.arch, "--l1-vfio", self.vfio, "--device", self.device,
                "--duration", str(duration), "--pass-after", str(pass_after)]
        if self.arch == "ppc64":
            args += ["--ic", self.ic]
        if self.consumer == "userspace":
            args += ["--consumer", "userspace"]
        else:
            args += ["--l2-accel", self.consumer.removeprefix("l2-")]
        return args


def all_cells() -> list[Cell]:
    return [Cell(a, ic, v, d, c) for a, ics in ARCH_ICS.items() for ic in ics
            for v in VFIO for d in DEVICES for c in CONSUMERS]


def select(cells: list[Cell], include_slow: bool, shard: str | None,
           patterns: str | None = None) -> list[Cell]:
    """Runnable cells, without the slow ones unless asked, only those matching one of the
    comma-separated glob patterns if given, then this shard's share. Shards split the
    sorted cell ids round-robin: deterministic on every runner."""
    chosen = sorted((c for c in cells if not c.unavailable() and (include_slow or not c.slow)
                     and matches(c, patterns)), key=lambda c: c.id)
    if patterns and not chosen:
        raise UserError(f"--cells {patterns}: no runnable cell matches; `rig matrix --list` shows them")
    if not shard:
        return chosen
    try:
        k, n = (int(x) for x in shard.split("/"))
        assert 1 <= k <= n
    except (ValueError, AssertionError):
        raise UserError(f"--shard {shard}: use K/N with 1 <= K <= N, e.g. 2/4") from None
    return chosen[k - 1::n]


def matches(cell: Cell, patterns: str | None) -> bool:
    return not patterns or any(fnmatch.fnmatchcase(cell.id, p.strip()) for p in patterns.split(","))


@dataclass
class RunOutcome:
    verdict: str
    seconds: float
    out: str
    reason: str
    l2_boot_failures: int = 0   # L2 boots that failed (then restarted) before the drive


class Runs:
    """The `rig run` processes in flight, so that Ctrl-C on the matrix reaches them: each is
    sent SIGINT (it cleans up its guests and exits 130) and no new one starts."""

    def __init__(self):
        self.stopping = threading.Event()
        self._procs: set[subprocess.Popen] = set()
        self._lock = threading.Lock()

    def start(self, cmd: list[str]) -> subprocess.Popen | None:
        with self._lock:
            if self.stopping.is_set():
                return None
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True, preexec_fn=own_session_ends_with_parent)
            self._procs.add(proc)
            return proc

    def done(self, proc: subprocess.Popen) -> None:
        with self._lock:
            self._procs.discard(proc)

    def interrupt(self) -> None:
        with self._lock:
            self.stopping.set()
            for proc in self._procs:
                proc.send_signal(signal.SIGINT)


def run_cell(cell: Cell, out: Path, cache_dir: str | None, duration: float, pass_after: int,
             runs: Runs) -> RunOutcome | None:
    """One `rig run` of the cell; None if the matrix was interrupted before or during it."""
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "rig.cli", "-q"] + (["--cache-dir", cache_dir] if cache_dir else [])
    cmd += cell.run_args(duration, pass_after) + ["--out", str(out)]
    t0 = time.monotonic()
    proc = runs.start(cmd)
    if proc is None:
        return None
    try:
        stdout, stderr = proc.communicate(timeout=3600)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)     # it cleans up; what it wrote says how far it got
        stdout, stderr = proc.communicate()
    finally:
        runs.done(proc)
    seconds = time.monotonic() - t0
    (out / "rig.log").write_text(stdout + stderr)
    if runs.stopping.is_set():
        return None
    try:
        result = json.loads((out / "result.json").read_text())
        v = result["verdict"]
        failures = len(result.get("chain", {}).get("l2_boot_failures", []))
        return RunOutcome(v["verdict"], seconds, str(out), v["reason"], failures)
    except (OSError, ValueError, KeyError):
        last = (stderr.strip().splitlines() or ["no output"])[-1]
        return RunOutcome("ERROR", seconds, str(out), f"rig exited {proc.returncode}: {last}")


def summarize(cell: Cell, runs: list[RunOutcome]) -> dict:
    exp = cell.expectation()
    agree = [r for r in runs if r.verdict == exp.verdict]
    secs = [r.seconds for r in runs]
    return {"cell": dataclasses.asdict(cell), "id": cell.id, "expected": exp.verdict,
            "why": exp.reason, "verdicts": [r.verdict for r in runs],
            "agreement": round(len(agree) / len(runs), 3) if runs else None,
            "seconds": {"median": round(statistics.median(secs), 1), "min": round(min(secs), 1),
                        "max": round(max(secs), 1)} if secs else None,
            "disagreements": [dataclasses.asdict(r) for r in runs if r.verdict != exp.verdict],
            # machinery the rig recovered from before a drive: shown, never hidden
            "l2_restarted": [dataclasses.asdict(r) for r in runs if r.l2_boot_failures]}


def write_junit(path: Path, results: list[dict]) -> None:
    cases = []
    for res in results:
        for i, v in enumerate(res["verdicts"]):
            name = res["id"] + (f"#{i + 1}" if len(res["verdicts"]) > 1 else "")
            message = quoteattr(f"expected {res['expected']}, got {v}")
            body = "" if v == res["expected"] else f'<failure message={message}>{escape(res["why"])}</failure>'

            cases.append(f'  <testcase classname="intx-rig.matrix" name={quoteattr(name)}>{body}</testcase>')
    failures = sum(1 for c in cases if "<failure" in c)
    path.write_text('<?xml version="1.0" encoding="UTF-8"?>\n'
                    f'<testsuite name="intx-rig-matrix" tests="{len(cases)}" failures="{failures}">\n'
                    + "\n".join(cases) + "\n</testsuite>\n")


def table(results: list[dict]) -> str:
    lines = [f"{'cell':44} {'expected':8} {'got':16} {'agree':>6} {'median s':>9}"]
    for r in results:
        got = ",".join(sorted(set(r["verdicts"])))
        lines.append(f"{r['id']:44} {r['expected']:8} {got:16} {r['agreement'] * 100:5.0f}% "
                     f"{r['seconds']['median']:9.1f}")
    return "\n".join(lines)


def run_matrix(cells: list[Cell], out: Path, repeat: int, cache_dir: str | None,
               duration: float, pass_after: int, progress, jobs: int = 1) -> list[dict]:
    """Every cell `repeat` times, `jobs` runs at a time. Runs go round by round (every
    cell's first run, then every cell's second), so a cell's repeats are spread over the
    whole matrix run rather than bunched together. matrix.json is rewritten as runs end."""
    tasks = [(cell, n) for n in range(repeat) for cell in cells]
    outcomes: dict[str, list[RunOutcome | None]] = {c.id: [None] * repeat for c in cells}
    lock = threading.Lock()
    runs = Runs()

    def one(i: int, cell: Cell, n: int) -> None:
        if runs.stopping.is_set():
            return
        progress.step(f"[{i}/{len(tasks)}] {cell.id} run {n + 1}/{repeat}")
        outcome = run_cell(cell, out / cell.id / f"run{n + 1}", cache_dir, duration, pass_after, runs)
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
        pool.shutdown(wait=True, cancel_futures=True)
        with lock:
            write_json(out, cells, outcomes, jobs)
        raise
    pool.shutdown()
    results = write_json(out, cells, outcomes, jobs)
    write_junit(out / "junit.xml", results)
    return results


def write_json(out: Path, cells: list[Cell], runs: dict, jobs: int) -> list[dict]:
    results = [summarize(c, [r for r in runs[c.id] if r]) for c in cells if any(runs[c.id])]
    for r in results:
        r["jobs"] = jobs
    (out / "matrix.json").write_text(json.dumps(results, indent=1))
    return results

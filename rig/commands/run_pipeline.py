"""A validated RunSpec run to its result files: the user's kernel checked, the chain built
and driven, the verdict (an unexpected failure is an ERROR with its cause and log), and
what the terminal shows of it. `rig run` (rig.commands.run) calls it."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from pathlib import Path

from rig import __version__
from rig.chain import gcov
from rig.chain.chain import Chain
from rig.chain.facts import RunFacts
from rig.chain.hold_server import Hold
from rig.chain.session import Session
from rig.chain.setup import ChainFailed, run_facts_of, running_chain
from rig.chain.verdict import Verdict, confirmed, describe_stop, pending_since
from rig.core.errors import InfraError, UserError
from rig.core.kinds import Outcome
from rig.core.logs import LOG_NAME, LogFile
from rig.core.spec import RunSpec
from rig.kernel import under_test
from rig.kernel.build import build
from rig.kernel.under_test import KernelUnderTest
from rig.reports import coverage
from rig.reports.drawing import Drawing
from rig.reports.ktap import write_run as write_ktap
from rig.reports.reproducer import SCRIPT
from rig.reports.reproducer import record as reproducer
from rig.reports.result import RunResult, write_run_junit

log = logging.getLogger(__name__)


def user_kernel(spec: RunSpec, unpack: Path, s: Session) -> KernelUnderTest | None:
    """The user's kernel (built first from --kernel-tree), checked: arch, modules version,
    required options."""
    k = spec.kernel
    if k.build:
        built = build(k.build, spec.profile, s.cache.root, s.progress)
        s.progress.note(f"L1 kernel {built.release} from {built.tree}: {built.compiled} files compiled or "
                        f"linked in {built.seconds:.0f} s ({built.kernel})")
        kut = under_test.from_paths(str(built.kernel), str(built.modules) if built.modules else None,
                                    spec.profile)
        return replace(kut, source=f"--kernel-tree {built.tree} ({built.config} configuration, "
                                   f"built in {built.build_dir})")
    if k.deb:
        return under_test.from_deb(str(k.deb), spec.profile, unpack, spec.machine_profile)
    if k.kernel:
        return under_test.from_paths(str(k.kernel), str(k.modules) if k.modules else None, spec.profile,
                                     spec.machine_profile)
    return None


def default_out(spec: RunSpec) -> Path:
    return Path(f"results/{spec.arch}-{spec.interrupt_controller}-{time.strftime('%Y%m%d-%H%M%S')}")


def run(s: Session, spec: RunSpec, kernel: KernelUnderTest | None) -> int:
    out = spec.out or default_out(spec)
    out.mkdir(parents=True, exist_ok=True)
    print(f"results: {out}")
    if spec.confirm == 1:
        return run_once(s, spec, kernel, out).exit_status
    outcomes: list[Outcome] = []
    for i in range(1, spec.confirm + 1):
        print(f"run {i} of up to {spec.confirm} (--confirm: a verdict only if all agree)")
        outcomes.append(run_once(s, spec, kernel, out / f"confirm-{i}").verdict)
        if len(set(outcomes)) > 1 or Outcome.ERROR in outcomes:
            break                        # no verdict can come of more runs
    status, why = confirmed(outcomes)
    (out / "confirm.json").write_text(json.dumps({"verdicts": outcomes, "exit_status": status, "why": why}))
    print(f"--confirm {spec.confirm}: {why}")
    return status


def run_once(s: Session, spec: RunSpec, kernel: KernelUnderTest | None, out: Path) -> Verdict:
    out.mkdir(parents=True, exist_ok=True)
    facts = run_facts_of(spec)       # what the stages return replaces it, or an error says
    chain: Chain | None = None
    verdict: Verdict | None = None
    t0 = time.monotonic()
    with LogFile(out) as log_file, Drawing() as drawing:
        log.info("rig run: %s", spec)
        try:
            with running_chain(s, spec, out, kernel) as chain:
                facts = chain.run_facts or facts
                verdict = chain.drive(spec.drive)
                record_coverage(chain, kernel, out, spec, s)
                report(out, result_of(spec, verdict, t0, facts, chain), spec, kernel, s, drawing)   # before a hold
                if spec.hold is not None and spec.holds(verdict.outcome):
                    drawing.wait()                 # the page a held run points at is complete
                    why = Hold(chain, out, spec.hold, verdict.outcome, s.progress).wait()
                    s.progress.step(f"hold ended: {why}; tearing the chain down")
                return verdict
        except UserError:
            raise           # bad input found only now (a device this QEMU cannot run): exit 2
        except InfraError as e:
            facts = e.facts if isinstance(e, ChainFailed) else facts
            log.error("ERROR: %s", e, exc_info=True)
            error = Verdict(Outcome.ERROR, str(e))
        except Exception as e:  # noqa: BLE001 - an ERROR with its cause, never a bare traceback
            log.critical("unexpected %s", type(e).__name__, exc_info=True)
            error = Verdict(Outcome.ERROR, f"unexpected {type(e).__name__} in the rig: {e} "
                                           f"(traceback in {log_file.path})")
        if verdict is not None:      # the chain failed tearing down after a verdict: the verdict stands
            log.warning("after the verdict: %s", error.reason)
            return verdict
        report(out, result_of(spec, error, t0, facts, chain), spec, kernel, s, drawing)
    return error


def record_coverage(chain: Chain, kernel: KernelUnderTest | None, out: Path, spec: RunSpec, s: Session) -> None:
    """A --coverage kernel's counters, fetched before L1 goes down and read into coverage.json;
    a failure here is noted, never the verdict's."""
    build_dir = gcov.build_dir_of(kernel)
    if build_dir is None:
        return
    try:
        gcov.fetch(chain.l1.ssh, out)
        print(coverage.describe(coverage.of_run(out, build_dir, spec.profile)))
    except InfraError as e:
        log.warning("coverage not recorded: %s", e)
        s.progress.note(f"coverage not recorded: {e}")


def result_of(spec: RunSpec, verdict: Verdict, t0: float, facts: RunFacts, chain: Chain | None) -> RunResult:
    fix = facts.l1.vfio_intx_fix if facts.l1 else None
    drive = chain.drive_spec if chain and chain.drive_spec else spec.drive
    return RunResult(spec.run_name(fix), verdict, time.monotonic() - t0, drive, facts,
                     chain.samples if chain else [], chain.facts if chain else None,
                     chain.times if chain else {}, chain.interrupt_path if chain else None)


def report(out: Path, r: RunResult, spec: RunSpec, kernel: KernelUnderTest | None, s: Session,
           drawing: Drawing) -> None:
    """The result files and the reproducer, and what the terminal shows of them; the pictures
    started on `drawing` (joined before anything reads them)."""
    r.write(out)
    reproducer(out, spec, r.name, r.verdict.outcome, kernel.kernel if kernel else None,
               kernel.modules_dir if kernel else None, r.to_json(), s.cache, __version__)
    write_run_junit(out, r.name, r.verdict, r.seconds, f"logs in {out}")
    write_ktap(out, r)
    stall_at = pending_since(r.samples) if r.verdict.outcome == Outcome.STALL else None
    drawing.start(out, r, stall_at)
    print(f"{r.verdict.outcome}: {r.verdict.reason}")
    if r.samples:
        print(f"  {describe_stop(r.verdict)}")
    if r.interrupt_path and r.interrupt_path.stopped_layer:
        print(f"  interrupt path: {r.interrupt_path.explanation}")
    if r.interrupt_path and r.interrupt_path.deliveries_per_serviced is not None:
        print(f"  L0's controller delivered the line {r.interrupt_path.deliveries} times, "
              f"{r.interrupt_path.deliveries_per_serviced:g} per serviced interrupt")
    if r.chain and r.chain.l2_boot_failures:
        print(f"  L2 failed to boot {len(r.chain.l2_boot_failures)} time(s) (result.json "
              f"chain.l2_boot_failures): {r.chain.l2_boot_failures[-1]}")
    print(f"  results in {out} (report.html, result.json, junit.xml, results.ktap, timeline.png/.svg, {LOG_NAME}, "
          f"console, QEMU and ftrace logs); rerun it: {out / SCRIPT}")

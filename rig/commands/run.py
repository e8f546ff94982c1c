"""`rig run`: the nested chain, driven, and its verdict.

Exit status for `git bisect run`: 0 PASS, 1 STALL, 125 ERROR (bisect: skip), 2 bad input.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

from rig.chain.chain import Chain
from rig.chain.drive import DriveConfig
from rig.chain.facts import RunFacts
from rig.chain.session import Session
from rig.chain.setup import running_chain
from rig.chain.verdict import ERROR, STALL, Verdict, describe_stop, pending_since
from rig.commands.common import Subparsers, optional_path, session
from rig.commands.preflight import check_qemu
from rig.core import timeouts
from rig.core.errors import InfraError, UserError
from rig.core.logs import LOG_NAME, LogFile
from rig.core.spec import ACCELS, CONSUMERS, DEVICES, L1_VFIO, DriveSpec, KernelUnderTestSpec, RunSpec
from rig.kernel import under_test
from rig.kernel.under_test import KernelUnderTest
from rig.reports.ktap import write_run as write_ktap
from rig.reports.result import RunResult, write_junit
from rig.reports.timeline import write_timeline

log = logging.getLogger(__name__)


def add_parser(sub: Subparsers) -> None:
    ru = sub.add_parser("run", help="the nested chain: drive interrupts, give a verdict "
                                    "(exit 0 PASS, 1 STALL, 125 ERROR)")
    ru.add_argument("--arch", required=True, help="x86_64 or ppc64")
    ru.add_argument("--ic", help="L0 interrupt controller: xive (default) or xics on ppc64")
    ru.add_argument("--duration", type=float, default=timeouts.DURATION_S, help="seconds of driving at most")
    ru.add_argument("--stall-window", type=float, default=timeouts.STALL_WINDOW_S,
                    help="STALL when pending work and no count moved for this long (s)")
    ru.add_argument("--device", choices=DEVICES,
                    help="the device under test: QEMU's pci-serial (INTx-maskable; vfio-pci "
                         "nointxmask=1 fakes legacy), the PCI 2.2 UART over vfio-user (legacy), "
                         "or its PCI 2.3 twin; default: legacy where usable")
    ru.add_argument("--pass-after", type=int, default=0, metavar="N",
                    help="PASS as soon as N interrupts were serviced and a stall window went by "
                         "(default 0: drive for the whole --duration)")
    ru.add_argument("--l2-accel", default="auto", choices=ACCELS)
    ru.add_argument("--l1-vfio", default="fixed", choices=L1_VFIO,
                    help="L1's vfio modules: Debian's (with the INTx fix) or rebuilt without it")
    ru.add_argument("--l1-smp", type=int, default=1, help="L1 vCPUs")
    ru.add_argument("--consumer", default="l2", choices=CONSUMERS,
                    help="who services the device: an L2 guest (default), or a userspace VFIO "
                         "program in L1 (fast mode, no L2)")
    ru.add_argument("--kernel", help="the L1 kernel under test (vmlinux, bzImage or vmlinuz)")
    ru.add_argument("--modules", help="its modules: lib/modules/<release> or an INSTALL_MOD_PATH root")
    ru.add_argument("--kernel-deb", help="the L1 kernel under test as a Debian/Ubuntu linux-image .deb")
    ru.add_argument("--qemu", help="use this qemu-system-* binary for L0")
    ru.add_argument("--boot-timeout", type=float, default=None,
                    help="per-guest boot timeout in s (default 400; an L2 under TCG: 1200)")
    ru.add_argument("--out", help="results directory (default results/<arch>-<ic>-<time>)")
    ru.set_defaults(handler=cmd_run)


def spec_of(args: argparse.Namespace) -> RunSpec:
    """The run as the command line gives it, validated (rig.core.spec), then checked
    against the host (rig.commands.preflight)."""
    spec = RunSpec(
        arch=args.arch, ic=args.ic, device=args.device, consumer=args.consumer, l1_vfio=args.l1_vfio,
        l2_accel=args.l2_accel, l1_smp=args.l1_smp, boot_timeout=args.boot_timeout,
        drive=DriveSpec(args.duration, args.stall_window, args.pass_after),
        kernel=KernelUnderTestSpec(optional_path(args.kernel), optional_path(args.modules),
                                   optional_path(args.kernel_deb)),
        qemu=optional_path(args.qemu), out=optional_path(args.out)).validate()
    if spec.qemu:
        check_qemu(str(spec.qemu), spec.profile)
    return spec


def cmd_run(args: argparse.Namespace) -> int:
    spec = spec_of(args)
    with tempfile.TemporaryDirectory(prefix="intx-rig-kernel-") as unpack:
        kernel = user_kernel(spec, Path(unpack))    # checked before anything boots
        return run(session(args, qemu=spec.qemu), spec, kernel)


def user_kernel(spec: RunSpec, unpack: Path) -> KernelUnderTest | None:
    """The user's kernel, checked: arch, modules version, required options."""
    k = spec.kernel
    if k.deb:
        return under_test.from_deb(str(k.deb), spec.profile, unpack)
    if k.kernel:
        return under_test.from_paths(str(k.kernel), str(k.modules) if k.modules else None, spec.profile)
    return None


def default_out(spec: RunSpec) -> Path:
    return Path(f"results/{spec.arch}-{spec.interrupt_controller}-{time.strftime('%Y%m%d-%H%M%S')}")


def run(s: Session, spec: RunSpec, kernel: KernelUnderTest | None) -> int:
    out = spec.out or default_out(spec)
    out.mkdir(parents=True, exist_ok=True)
    print(f"results: {out}")
    cfg = DriveConfig.from_spec(spec.drive)
    facts = RunFacts(spec.arch, spec.interrupt_controller, spec.consumer)
    chain: Chain | None = None
    t0 = time.monotonic()
    with LogFile(out) as log_file:
        log.info("rig run: %s", spec)
        try:
            with running_chain(s, spec, out, facts, kernel) as chain:
                verdict = chain.drive(cfg)
        except UserError:
            raise           # bad input found only now (a device this QEMU cannot run): exit 2
        except InfraError as e:
            log.error("ERROR: %s", e, exc_info=True)
            verdict = Verdict(ERROR, str(e))
        except Exception as e:  # noqa: BLE001 - an ERROR with its cause, never a bare traceback
            log.critical("unexpected %s", type(e).__name__, exc_info=True)
            verdict = Verdict(ERROR, f"unexpected {type(e).__name__} in the rig: {e} "
                                     f"(traceback in {log_file.path})")
        result = RunResult(spec.name, verdict, time.monotonic() - t0, cfg, facts,
                           chain.samples if chain else [], chain.facts if chain else None,
                           chain.times if chain else {}, chain.interrupt_path if chain else None)
        report(out, result)
    return verdict.exit_status


def report(out: Path, r: RunResult) -> None:
    """The result files, and what the terminal shows of them."""
    r.write(out)
    write_junit(out, r.name, r.verdict, r.seconds, f"logs in {out}")
    write_ktap(out, r)
    stall_at = pending_since(r.samples) if r.verdict.verdict == STALL else None
    write_timeline(out, r.samples, f"{r.name}: {r.verdict.verdict}", stall_at, r.interrupt_path)
    print(f"{r.verdict.verdict}: {r.verdict.reason}")
    if r.samples:
        print(f"  {describe_stop(r.verdict)}")
    if r.interrupt_path and r.interrupt_path.stopped_layer:
        print(f"  interrupt path: {r.interrupt_path.explanation}")
    if r.chain and r.chain.l2_boot_failures:
        print(f"  L2 failed to boot {len(r.chain.l2_boot_failures)} time(s) (result.json "
              f"chain.l2_boot_failures): {r.chain.l2_boot_failures[-1]}")
    print(f"  results in {out} (result.json, junit.xml, results.ktap, timeline.png/.svg, {LOG_NAME}, "
          "console, QEMU and ftrace logs)")

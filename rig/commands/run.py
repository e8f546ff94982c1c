"""`rig run`: the nested chain, driven, and its verdict.

Exit status for `git bisect run`: 0 PASS, 1 STALL, 125 ERROR (bisect: skip), 2 bad input.
The chain's modules (QEMU, SSH, images) load only once the spec is valid
(rig.commands.run_pipeline): bad input is rejected in a fraction of a second.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from rig.commands.common import Subparsers, optional_path, session
from rig.commands.kernel import add_build_options, build_spec_of
from rig.core import timeouts
from rig.core.errors import SpecError
from rig.core.spec import ACCELS, CONSUMERS, DEVICES, L1_VFIO, PASS_AFTER, DriveSpec, KernelUnderTestSpec, RunSpec


def add_parser(sub: Subparsers) -> None:
    ru = sub.add_parser("run", help="the nested chain: drive interrupts, give a verdict "
                                    "(exit 0 PASS, 1 STALL, 125 ERROR)")
    ru.add_argument("--arch", required=True, help="x86_64 or ppc64")
    ru.add_argument("--machine", help="L1's machine: q35 (x86_64); pseries (default) or powernv, "
                                      "bare metal with native XIVE (ppc64)")
    ru.add_argument("--ic", help="L0 interrupt controller: xive (default) or xics on pseries")
    ru.add_argument("--duration", type=float, default=timeouts.DURATION_S, help="seconds of driving at most")
    ru.add_argument("--stall-window", type=float, default=None,
                    help="STALL when pending work and no count moved for this long (s; default 2 in fast "
                         "mode, 3 with L2 under KVM, 5 under TCG)")
    ru.add_argument("--device", choices=DEVICES,
                    help="the device under test: QEMU's pci-serial (INTx-maskable; vfio-pci "
                         "nointxmask=1 fakes legacy), a virtio console with MSI-X off (virtio-serial, "
                         "faked the same way; MMIO only), the PCI 2.2 UART over vfio-user (legacy), "
                         "or its PCI 2.3 twin; default: legacy on x86_64 where usable, pci-serial on "
                         "pseries, virtio-serial on powernv")
    ru.add_argument("--pass-after", type=int, default=None, metavar="N",
                    help="PASS as soon as N interrupts were serviced "
                         f"(default 0: drive for the whole --duration; with --bisect {PASS_AFTER}, "
                         "as the matrix: a good step ends as soon as it is certain)")
    ru.add_argument("--l2-accel", default="auto", choices=ACCELS)
    ru.add_argument("--l1-vfio", default="fixed", choices=L1_VFIO,
                    help="L1's vfio modules: Debian's (with the INTx fix) or rebuilt without it")
    ru.add_argument("--l1-smp", type=int, default=1, help="L1 vCPUs")
    ru.add_argument("--consumer", default="l2", choices=CONSUMERS,
                    help="who services the device: an L2 guest (default), or a userspace VFIO "
                         "program in L1 (fast mode, no L2)")
    ru.add_argument("--scenario", default="flow", metavar="NAME",
                    help="which of vfio's INTx paths to drive: flow (default: serviced and unmasked, again "
                         "and again), masked-pending, deassert-while-masked, reopen, config-mask, new-trigger, "
                         "reset-asserted, storm, exclusive (fast mode only), l2-reboot (--consumer l2 only); "
                         "docs/scenarios.md")
    ru.add_argument("--kernel", help="the L1 kernel under test (vmlinux, bzImage or vmlinuz)")
    ru.add_argument("--modules", help="its modules: lib/modules/<release> or an INSTALL_MOD_PATH root")
    ru.add_argument("--kernel-deb", help="the L1 kernel under test as a Debian/Ubuntu linux-image .deb")
    add_build_options(ru)
    ru.add_argument("--qemu", help="use this qemu-system-* binary for L0")
    ru.add_argument("--confirm", type=int, default=1, metavar="N",
                    help="run up to N times and give a verdict only if all agree; a split exits 125 "
                         "(git bisect run: skip)")
    ru.add_argument("--hold", type=float, nargs="?", const=timeouts.HOLD_MINUTES, metavar="MINUTES",
                    help="after the verdict keep L0, L1 and L2 running for a look (`rig ssh`, `rig monitor`) "
                         f"until `rig stop`, Ctrl-C or MINUTES (default {timeouts.HOLD_MINUTES:g}) have passed")
    ru.add_argument("--detach", action="store_true",
                    help="with --hold: give the prompt back once the chain is held; the held rig goes on "
                         "in the background (its output in OUT/hold.log) until `rig stop` or its time limit")
    ru.add_argument("--expect", choices=("PASS", "STALL", "FAIL"),
                    help="the verdict this cell should give (with --hold-unexpected)")
    ru.add_argument("--hold-unexpected", type=float, nargs="?", const=timeouts.HOLD_MINUTES, metavar="MINUTES",
                    help="like --hold, but only when the verdict is not the one --expect gives: a wrong verdict "
                         "caught in the act")
    ru.add_argument("--no-snapshot", dest="snapshot", action="store_false",
                    help="boot L1 instead of restoring it from a snapshot of an earlier run's, and save none")
    ru.add_argument("--boot-timeout", type=float, default=None,
                    help="per-guest boot timeout in s (default 400; an L2 under TCG: 1200)")
    ru.add_argument("--out", help="results directory (default results/<arch>-<ic>-<time>)")
    ru.set_defaults(handler=cmd_run)


def spec_of(args: argparse.Namespace) -> RunSpec:
    """The run as the command line gives it, validated (rig.core.spec), then checked
    against the host (rig.commands.preflight)."""
    if args.hold is not None and args.hold_unexpected is not None:
        raise SpecError("--hold", "--hold and --hold-unexpected: give one of them")
    spec = RunSpec(
        arch=args.arch, machine=args.machine, ic=args.ic, device=args.device, consumer=args.consumer,
        scenario=args.scenario, l1_vfio=args.l1_vfio, snapshot=args.snapshot, confirm=args.confirm,
        hold=args.hold if args.hold_unexpected is None else args.hold_unexpected,
        detach=args.detach, l2_accel=args.l2_accel, l1_smp=args.l1_smp, expect=args.expect,
        hold_unexpected=args.hold_unexpected is not None,
        boot_timeout=args.boot_timeout,
        drive=DriveSpec(args.duration, args.stall_window, pass_after_of(args)),
        kernel=KernelUnderTestSpec(optional_path(args.kernel), optional_path(args.modules),
                                   optional_path(args.kernel_deb), build_spec_of(args)),
        qemu=optional_path(args.qemu), out=optional_path(args.out) or bisect_out(args)).validate()
    if spec.qemu:
        from rig.commands.preflight import check_qemu
        check_qemu(str(spec.qemu), spec.profile, spec.machine_profile)
    return spec


def pass_after_of(args: argparse.Namespace) -> int:
    if args.pass_after is not None:
        return int(args.pass_after)
    return PASS_AFTER if args.bisect else 0


def bisect_out(args: argparse.Namespace) -> Path | None:
    """Where a `git bisect run` step's results go when --out is not given: not the cwd,
    which is the kernel tree being bisected (a results/ there would be in every step's
    checkout, and in `git status`)."""
    if not args.bisect:
        return None
    step = f"{args.arch}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    return Path(tempfile.gettempdir()) / "intx-rig-bisect" / step


def cmd_run(args: argparse.Namespace) -> int:
    spec = spec_of(args)
    if spec.detach:
        from rig.commands.hold_client import run_detached
        from rig.commands.run_pipeline import default_out
        return run_detached(args.argv, spec.out or default_out(spec))
    from rig.commands.run_pipeline import run, user_kernel
    s = session(args, qemu=spec.qemu)
    with tempfile.TemporaryDirectory(prefix="intx-rig-kernel-") as unpack:
        kernel = user_kernel(spec, Path(unpack), s)    # built, then checked, before anything boots
        return run(s, spec, kernel)



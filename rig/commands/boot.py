"""`rig boot`: start L1 under QEMU, reach its console and SSH, run a command, power off."""

from __future__ import annotations

import argparse
import json

from rig.commands.common import Subparsers, optional_path, session
from rig.core import timeouts
from rig.core.errors import InfraError
from rig.core.logs import LogFile
from rig.core.spec import ACCELS, BootSpec


def add_parser(sub: Subparsers) -> None:
    bo = sub.add_parser("boot", help="boot L1, run a command over SSH, power off")
    bo.add_argument("--arch", required=True, help="x86_64 or ppc64")
    bo.add_argument("--machine", help="L1's machine: q35 (x86_64); pseries (default) or powernv (ppc64)")
    bo.add_argument("--accel", default="auto", choices=ACCELS,
                    help="L1 accelerator (auto: KVM only where /dev/kvm runs a guest)")
    bo.add_argument("--qemu", help="use this qemu-system-* binary for L0")
    bo.add_argument("--kernel", help="boot this L1 kernel instead of the image's")
    bo.add_argument("--command", default=BootSpec.command, help="command to run in L1 over SSH")
    bo.add_argument("--out", help="directory for logs (default: a temporary one, removed)")
    bo.add_argument("--timeout", type=float, default=timeouts.BOOT_COMMAND_BOOT_S, help="boot timeout in seconds")
    bo.set_defaults(handler=cmd_boot)


def spec_of(args: argparse.Namespace) -> BootSpec:
    from rig.commands.preflight import check_kernel_file, check_qemu
    spec = BootSpec(arch=args.arch, machine=args.machine, accel=args.accel, kernel=optional_path(args.kernel),
                    command=args.command, timeout=args.timeout, qemu=optional_path(args.qemu),
                    out=optional_path(args.out)).validate()
    prof = spec.profile
    if spec.qemu:
        check_qemu(str(spec.qemu), prof, spec.machine_profile)
    if spec.kernel:
        check_kernel_file(str(spec.kernel), prof)
    return spec


def cmd_boot(args: argparse.Namespace) -> int:
    from rig.chain.launch import start_l0
    from rig.guests.l1 import GuestConfig
    from rig.host.rundir import RunDir
    spec = spec_of(args)
    prof = spec.profile
    s = session(args, qemu=spec.qemu)
    mach = spec.machine_profile
    l0 = start_l0(s, mach, spec.accel, purpose="booting")
    qemu, accel = l0.qemu, l0.accel
    print(f"L0 QEMU: {qemu.describe()}")
    print(f"L1 accelerator: {accel}")
    with s.builder() as b:
        image = b.l1(prof)
    # Without --out the logs live in the run directory: removed at the end, and reaped by
    # the next rig start if this one is killed (a directory of its own in /tmp would stay).
    with RunDir("boot") as run_dir:
        out = spec.out or run_dir / "logs"
        out.mkdir(parents=True, exist_ok=True)
        with LogFile(out), l0.l1(s, image, run_dir, out, GuestConfig(kernel=spec.kernel, machine=mach)) as guest:
            try:
                times = guest.boot(timeout=spec.timeout)
                result = guest.ssh.run(spec.command, timeout=timeouts.USER_COMMAND_S)
            except InfraError as e:
                where = f"console log: {guest.machine.console_log}" if spec.out else "--out DIR keeps the console log"
                raise InfraError(f"{e} ({where})") from e
            print(result.stdout, end="")
            if result.stderr:
                print(result.stderr, end="")
            how = guest.shutdown()
        summary = {"arch": prof.name, "machine": mach.name, "accel": accel.name, "qemu": qemu.describe(),
                   "kernel": guest.kernel_release, "console_ready_s": round(times.console_ready, 2),
                   "ssh_ready_s": round(times.ssh_ready, 2), "command_status": result.status,
                   "shutdown": how}
        print(json.dumps(summary))
        (out / "boot.json").write_text(json.dumps(summary, indent=1))
        return 0 if result.status == 0 else 1

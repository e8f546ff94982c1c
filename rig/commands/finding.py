"""Evidence for the upstream reports in docs/findings/, produced by the product.

intx_probe_writes(): does the L1 kernel probe INTx masking (Linux's pci_intx_mask_broken(),
which writes the command register with bit 10 flipped and reads it back)? Boots L1 with the
stock pci-serial device, switches QEMU's pci_cfg_write trace event on over QMP while the
machine is still paused, and collects the config writes to the device's command register.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import TYPE_CHECKING

from rig.commands.common import Subparsers, arches, session
from rig.commands.setup import check_arch
from rig.core import timeouts
from rig.core.errors import UserError
from rig.core.json_object import JsonObject
from rig.core.spec import writable_dir
from rig.core.targets import MACHINES, TargetProfile, machine, profile

if TYPE_CHECKING:     # loaded when the command runs: bad input is answered at once
    from rig.chain.session import Session

# log backend: "pci_cfg_write pci-serial 00:02.0 @0x4 <- 0x403" (with a pid@time prefix)
CFG_WRITE = re.compile(r"pci_cfg_write (\S+) (\S+) @0x([0-9a-f]+) <- 0x([0-9a-f]+)")
COMMAND = 0x4
INTX_DISABLE = 0x400


def command_writes(qemu_log: str, device: str = "pci-serial") -> list[int]:
    """Values written to `device`'s command register, in order."""
    out = []
    for m in CFG_WRITE.finditer(qemu_log):
        if m.group(1) == device and int(m.group(3), 16) == COMMAND:
            out.append(int(m.group(4), 16))
    return out


def intx_probe_writes(s: Session, prof: TargetProfile, out: Path | None = None) -> JsonObject:
    from rig.chain.device import PciSerial
    from rig.chain.launch import start_l0
    from rig.guests.l1 import GuestConfig
    from rig.guests.machine import QemuMachine
    from rig.host.rundir import RunDir
    l0 = start_l0(s, machine(prof.name), purpose="probing INTx masking on")
    with s.builder() as b:
        image = b.l1(prof)
    with RunDir("finding") as run_dir:
        # Without `out` the logs go with the run directory (nothing left in /tmp, even if killed).
        logs = Path(out) if out else run_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        device = PciSerial(machine(prof.name), run_dir)
        try:
            def trace_on(machine: QemuMachine) -> None:
                machine.cmd("trace-event-set-state", name="pci_cfg_write", enable=True)
            config = GuestConfig(extra_args=device.qemu_args(), before_start=trace_on)
            with l0.l1(s, image, run_dir, logs, config) as l1:
                l1.boot()
                device.connected()
                l1.shutdown()
                text = l1.machine.qemu_log.read_text(errors="replace")
        finally:
            device.close()
    writes = command_writes(text)
    probes = [w for w in writes if w & INTX_DISABLE]
    return {"arch": prof.name, "kernel": image.kernel_version, "qemu": l0.qemu.describe(),
            "command_writes": [f"0x{w:04x}" for w in writes],
            "intx_disable_probe_writes": [f"0x{w:04x}" for w in probes],
            "probed": bool(probes), "log": str(l1.machine.qemu_log) if out else "--out DIR keeps it"}


def add_parser(sub: Subparsers) -> None:
    add_intx_probe_parser(sub)
    add_vfio_user_parser(sub)


def add_intx_probe_parser(sub: Subparsers) -> None:
    p = sub.add_parser("finding-intx-probe",
                       help="show (QEMU pci_cfg_write trace) whether L1's kernel probes INTx masking")
    p.add_argument("--arch", default="all", help="x86_64, ppc64 or all (default)")
    p.add_argument("--out", help="keep the logs here")
    p.set_defaults(handler=cmd_finding)


def cmd_finding(args: argparse.Namespace) -> int:
    check_arch(args.arch)
    if args.out:
        writable_dir("--out", Path(args.out))
    s = session(args)
    for prof in arches(args.arch):
        r = intx_probe_writes(s, prof, Path(args.out) / prof.name if args.out else None)
        verb = "probes" if r["probed"] else "never probes"
        print(f"{prof.name}: L1 kernel {r['kernel']} {verb} INTx masking: writes to pci-serial's "
              f"command register {', '.join(r['command_writes']) or 'none'} (QEMU trace, {r['log']})")
    return 0


def add_vfio_user_parser(sub: Subparsers) -> None:
    p = sub.add_parser("finding-vfio-user",
                       help="show whether L0's QEMU starts and resets each machine with a vfio-user device")
    p.add_argument("--machine", default="all", help="pseries, powernv, q35 or all (default)")
    p.set_defaults(handler=cmd_vfio_user)


def cmd_vfio_user(args: argparse.Namespace) -> int:
    """The probe `rig run` uses (rig.chain.device_probe), run afresh on each machine: QEMU
    created with the rig's vfio-user device on the bus the run would use, reset once over
    the monitor. The answer for pseries is docs/findings/qemu-spapr-eeh-vfio-user-abort.md,
    for powernv docs/findings/qemu-pnv-phb4-vfio-user-hang.md."""
    import time

    from rig.chain.device_probe import probe
    names = {m.name: m for m in MACHINES.values()}
    if args.machine != "all" and args.machine not in names:
        raise UserError(f"--machine {args.machine}: use one of {', '.join(names)} or all")
    s = session(args)
    for mach in names.values() if args.machine == "all" else (names[args.machine],):
        qemu = s.qemu(profile(mach.arch))
        t0 = time.monotonic()
        ok, why = probe(mach, qemu, timeout=timeouts.VFIO_USER_FINDING_S)
        print(f"{mach.name}: {'works' if ok else 'fails'} after {time.monotonic() - t0:.1f} s: {why} "
              f"({qemu.describe()})")
    return 0

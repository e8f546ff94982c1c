"""`rig finding-powernv-restore`: the evidence for
docs/findings/qemu-powernv-migrates-without-its-controllers.md, produced by the product.

Boots a powernv9 L1, reads what QEMU's monitor says of its XIVE routing (`info pic`) and its
PCI bus (`info pci`), saves it with a migration to a file, loads that into a new QEMU
started with the same arguments and -incoming defer, and reads them again: QEMU 11.1.3 has
no migration state for pnv-xive, the PSI or the PHB4 root ports, so the restored machine
has no interrupt routing and its NIC is off the bus; then whether L1 answers SSH."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rig.commands.common import Subparsers, session
from rig.core import timeouts
from rig.core.errors import InfraError
from rig.core.spec import writable_dir

if TYPE_CHECKING:
    from rig.chain.session import Session
    from rig.guests.machine import QemuMachine

SECONDARY_BUS = re.compile(r"secondary bus (\d+)\.")


@dataclass(frozen=True)
class ControllerState:
    """What QEMU's monitor shows of powernv9's interrupt routing and PCI bus."""

    routed: int            # XIVE EAT entries: interrupt sources routed to an event queue
    queues: int            # XIVE ENDT entries: event queues
    secondary_bus: int | None     # the NIC's root port's secondary bus number
    devices_behind: int    # PCI functions on buses behind the root ports

    def describe(self) -> str:
        return (f"XIVE routes {self.routed} sources to {self.queues} event queue(s); the root port's secondary "
                f"bus is {self.secondary_bus}, {self.devices_behind} device(s) behind it")


def section(pic: str, title: str) -> list[str]:
    """The entry lines under an `info pic` section header (e.g. 'EAT', 'ENDT')."""
    lines, inside = [], False
    for line in pic.splitlines():
        if not line.startswith(" "):
            inside = bool(re.match(rf"XIVE\[\d+\] #\d+ {title}\b", line))
            continue
        if inside:
            lines.append(line)
    return lines


def controller_state(pic: str, pci: str) -> ControllerState:
    bus = SECONDARY_BUS.search(pci)
    behind = len(re.findall(r"^\s*Bus\s+[1-9]\d*, device", pci, re.M))
    return ControllerState(len(section(pic, "EAT")), len(section(pic, "ENDT")),
                           int(bus.group(1)) if bus else None, behind)


def read_state(m: QemuMachine) -> tuple[str, str]:
    return m.hmp("info pic"), m.hmp("info pci")


def save_and_restore(s: Session, logs: Path) -> tuple[str, ControllerState, ControllerState, str]:
    """(QEMU, state booted, state restored, how SSH went after the restore)."""
    from rig.chain.launch import start_l0
    from rig.core.targets import POWERNV
    from rig.guests.l1 import GuestConfig
    from rig.guests.snapshot import SnapshotStore, migrate
    from rig.host.rundir import RunDir
    l0 = start_l0(s, POWERNV, purpose="saving and restoring")
    with s.builder() as b:
        image = b.l1(l0.profile)
    with RunDir("finding") as run_dir, l0.l1(s, image, run_dir, logs, GuestConfig(machine=POWERNV)) as l1:
        l1.boot()
        booted = read_state(l1.machine)
        stream = run_dir / "powernv.mig"
        status = migrate(l1.machine, "migrate", stream, timeouts.SNAPSHOT_SAVE_S)
        if status != "completed":
            raise InfraError(f"the save did not complete: migration {status}")
        l1.relaunch()
        try:
            l1.restore(SnapshotStore(s.cache), stream)
            ssh = "L1 answers SSH"
        except InfraError as e:
            ssh = str(e)
        stream.unlink()     # 370 MB
        restored = read_state(l1.machine)
        for name, (pic, pci) in (("booted", booted), ("restored", restored)):
            (logs / f"info-pic-{name}.txt").write_text(pic)
            (logs / f"info-pci-{name}.txt").write_text(pci)
        return l0.qemu.describe(), controller_state(*booted), controller_state(*restored), ssh


def add_parser(sub: Subparsers) -> None:
    p = sub.add_parser("finding-powernv-restore",
                       help="show what a powernv9 L1 saved and restored by QEMU has left of its XIVE and PCI")
    p.add_argument("--out", help="keep the logs and `info pic`/`info pci` before and after here")
    p.set_defaults(handler=cmd_powernv_restore)


def cmd_powernv_restore(args: argparse.Namespace) -> int:
    from rig.host.rundir import RunDir
    if args.out:
        writable_dir("--out", Path(args.out))
    s = session(args)
    with RunDir("logs") as tmp:
        logs = Path(args.out) if args.out else tmp.path
        logs.mkdir(parents=True, exist_ok=True)
        qemu, booted, restored, ssh = save_and_restore(s, logs)
    print(f"powernv ({qemu}):\n  booted:   {booted.describe()}\n  restored: {restored.describe()} "
          f"(the migration completed, the guest runs)\n  then: {ssh}")
    return 0

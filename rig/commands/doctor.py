"""`rig doctor`: what the host has, and what the rig will use for each arch."""

from __future__ import annotations

import argparse
import platform

from rig import __version__
from rig.commands.common import Subparsers, session
from rig.core.targets import PROFILES
from rig.host import needs
from rig.host.accel import choose_accel
from rig.host.qemu import L0_QEMU_SET, PREFERRED_VERSION, system_qemu


def add_parser(sub: Subparsers) -> None:
    p = sub.add_parser("doctor", help="report what the host has and what the rig will use")
    p.set_defaults(handler=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    s = session(args)
    print(f"intx-rig {__version__} on {platform.machine()}, Python {platform.python_version()}")
    for need in needs.HOST_NEEDS:
        print(f"  host package {need.package:24} {'ok' if need.present() else 'MISSING'}  ({need.why})")
    print(f"  cache {s.cache.root}")
    ready = not needs.missing()
    for prof in PROFILES.values():
        sysq = system_qemu(prof)
        if sysq and sysq.version[:2] >= PREFERRED_VERSION:
            q = sysq
        elif s.cache.read_json("locks", f"{L0_QEMU_SET.name}-{L0_QEMU_SET.key()}.json") is None:
            print(f"  {prof.name}: QEMU not set up yet (system: "
                  f"{sysq.describe() if sysq else 'none'}); run `rig setup`")
            ready = False
            continue
        else:
            q = s.qemu(prof)
        accel = choose_accel(prof, q)
        print(f"  {prof.name}: QEMU {q.describe()}; vfio-user-pci: "
              f"{'yes' if q.has_device('vfio-user-pci') else 'no'}; L1 accelerator: {accel}")
    return 0 if ready else 1

"""`rig doctor`: what the host has, and what the rig will use for each arch."""

from __future__ import annotations

import argparse
import platform

from rig import __version__
from rig.commands.common import Subparsers, session
from rig.core.targets import PROFILES, MachineProfile, machines_of
from rig.host import needs
from rig.host.profiles import host_profile
from rig.kernel.ccache import CompilerCache


def add_parser(sub: Subparsers) -> None:
    p = sub.add_parser("doctor", help="report what the host has and what the rig will use")
    p.set_defaults(handler=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    from rig.host.accel import host_plan
    from rig.host.qemu import PREFERRED_VERSION, l0_qemu_set, system_qemu
    s = session(args)
    host = host_profile()
    print(f"intx-rig {__version__} on {host.machine} ({host.name} host profile), Python {platform.python_version()}")
    for need in needs.host_needs(host):
        print(f"  host package {need.package:24} {'ok' if need.present() else 'MISSING'}  ({need.why})")
    print(f"  cache {s.cache.root}")
    print(f"  kernel builds' ccache: {ccache_line(CompilerCache(s.cache.root))}")
    ready = not needs.missing(host)
    qset = l0_qemu_set(host)
    for prof in PROFILES.values():
        sysq = system_qemu(prof)
        if sysq and sysq.version[:2] >= PREFERRED_VERSION:
            q = sysq
        elif s.cache.read_json("locks", f"{qset.name}-{qset.key()}.json") is None:
            print(f"  {prof.name}: QEMU not set up yet (system: "
                  f"{sysq.describe() if sysq else 'none'}); run `rig setup`")
            ready = False
            continue
        else:
            q = s.qemu(prof)
        plan = host_plan(prof, q)
        print(f"  {prof.name}: QEMU {q.describe()}; vfio-user-pci: "
              f"{'yes' if q.has_device('vfio-user-pci') else 'no'}")
        print(f"    L1 under {plan.l1.upper()}: {plan.l1_why}")
        if plan.module:
            print(f"    host KVM module {plan.module}, nested={plan.nested if plan.nested is not None else 'unknown'}")
        print(f"    L2 under {plan.l2.upper()}: {plan.l2_why}")
        for mach in machines_of(prof.name):
            where = f"TCG only: {mach.tcg_only}" if mach.tcg_only else f"L1 under {plan.l1.upper()}"
            print(f"    --machine {mach.name}: {mach.description}; --ic {'/'.join(mach.interrupt_controllers)}, "
                  f"--device {'/'.join(mach.devices)}; {where}; {restores(mach)}")
    return 0 if ready else 1


def restores(mach: MachineProfile) -> str:
    """Whether later runs restore L1 from a snapshot on this machine, and why not."""
    if mach.snapshot_problem:
        return f"L1 boots every run: {mach.snapshot_problem}"
    hot = f" (devices that cannot migrate hotplugged on {mach.hotplug_bus})" if mach.hotplug_bus else ""
    return f"L1 restored from a snapshot after its first run{hot}"


def ccache_line(store: CompilerCache) -> str:
    totals = store.totals()
    if totals is None:
        return f"empty ({store.dir})"
    counts, size = totals
    return f"{counts.describe()} over all builds; {size} ({store.dir})"

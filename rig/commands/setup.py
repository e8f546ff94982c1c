"""`rig setup` (host packages, the L0 QEMU, every image) and `rig build` (the images)."""

from __future__ import annotations

import argparse
import json

from rig.commands.common import Subparsers, arches, optional_path, session
from rig.core.errors import UserError
from rig.core.spec import L1_VFIO, existing_file
from rig.core.targets import PROFILES
from rig.host import needs


def add_parser(sub: Subparsers) -> None:
    sp = sub.add_parser("setup", help="install host packages, fetch QEMU, build images")
    sp.add_argument("--arch", default="all", help="x86_64, ppc64 or all (default)")
    sp.add_argument("--qemu", help="use this qemu-system-* binary for L0")
    sp.add_argument("--host-only", action="store_true", help="only install the missing host packages")
    sp.set_defaults(handler=cmd_setup)
    sb = sub.add_parser("build", help="build (or find in the cache) the L1 and L2 images")
    sb.add_argument("--arch", default="all", help="x86_64, ppc64 or all (default)")
    sb.add_argument("--l1-vfio", default="fixed", choices=L1_VFIO,
                    help="L1's vfio modules: Debian's (fixed) or rebuilt without the INTx fix")
    sb.set_defaults(handler=cmd_build)


def check_arch(value: str) -> None:
    if value != "all" and value not in PROFILES:
        raise UserError(f"--arch {value}: use one of {', '.join(sorted(PROFILES))} or all")


def cmd_setup(args: argparse.Namespace) -> int:
    check_arch(args.arch)
    existing_file("--qemu", optional_path(args.qemu), executable=True)
    s = session(args, qemu=optional_path(args.qemu))
    installed = needs.install_missing(s.progress)
    if installed:
        s.progress.note(f"installed {' '.join(installed)}")
    if args.host_only:
        return 0
    for prof in arches(args.arch):
        q = s.qemu(prof)
        s.progress.step(f"{prof.name}: {q.describe()}")
        with s.builder() as b:
            for vfio in L1_VFIO:
                img = b.l1(prof, vfio)
                s.progress.step(f"{prof.name}: L1 image ({vfio} vfio) ready, kernel "
                                f"{img.kernel_version}, INTx fix in vfio-pci-core.ko: "
                                f"{img.meta['vfio_intx_fix']}")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    check_arch(args.arch)
    s = session(args)
    out = {}
    with s.builder() as b:
        for prof in arches(args.arch):
            l2 = b.l2(prof)
            l1 = b.l1(prof, args.l1_vfio)
            out[prof.name] = {"l1": str(l1.initrd.parent), "l2": str(l2.initrd.parent),
                              "kernel": l1.kernel_version,
                              "kernel_package": l1.meta["kernel_package"],
                              "vfio_intx_fix": l1.meta["vfio_intx_fix"]}
    print(json.dumps(out, indent=1))
    return 0

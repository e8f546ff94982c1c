"""The `rig` command: doctor, setup, build, boot.

Exit status: 0 success; 2 bad input or unusable host (one line, no traceback);
125 the machinery failed (ERROR: a guest that did not boot, a QEMU that died);
130 interrupted. Every run says which QEMU and which accelerator it used.
"""

from __future__ import annotations

import argparse
import json
import platform
import signal
import sys
from functools import cached_property
from pathlib import Path

from . import __version__, host
from .accel import choose_accel
from .cache import Cache
from .errors import InfraError, RigError, UserError
from .keys import KeySet, load_or_create
from .packages import Resolver
from .progress import Progress
from .qemu_binary import L0_QEMU_SET, PREFERRED_VERSION, choose_qemu, system_qemu
from .runtime import reap_stale
from .targets import PROFILES, TargetProfile, profile


class Session:
    """What every command shares: cache, progress, resolver, keys."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.progress = Progress(quiet=args.quiet)

    @cached_property
    def cache(self) -> Cache:
        return Cache(Path(self.args.cache_dir) if self.args.cache_dir else None)

    @cached_property
    def resolver(self) -> Resolver:
        return Resolver(self.cache, self.progress, refresh=self.args.refresh)

    @cached_property
    def keys(self) -> KeySet:
        return load_or_create(self.cache.root / "keys")

    def qemu(self, prof: TargetProfile):
        return choose_qemu(prof, self.cache, self.resolver, self.progress,
                           explicit=getattr(self.args, "qemu", None))

    def builder(self):
        from guest_images.build import ImageBuilder
        return ImageBuilder(self.cache, self.resolver, self.keys, self.progress)


def arches(value: str) -> list[TargetProfile]:
    return list(PROFILES.values()) if value == "all" else [profile(value)]


def cmd_doctor(s: Session) -> int:
    print(f"intx-rig {__version__} on {platform.machine()}, Python {platform.python_version()}")
    miss = host.missing()
    for need in host.HOST_NEEDS:
        print(f"  host package {need.package:24} {'ok' if need.present() else 'MISSING'}  ({need.why})")
    print(f"  cache {s.cache.root}")
    ready = not miss
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


def cmd_setup(s: Session) -> int:
    installed = host.install_missing(s.progress)
    if installed:
        s.progress.note(f"installed {' '.join(installed)}")
    if s.args.host_only:
        return 0
    for prof in arches(s.args.arch):
        q = s.qemu(prof)
        s.progress.step(f"{prof.name}: {q.describe()}")
        with s.builder() as b:
            for vfio in ("fixed", "unfixed"):
                img = b.l1(prof, vfio)
                s.progress.step(f"{prof.name}: L1 image ({vfio} vfio) ready, kernel "
                                f"{img.kernel_version}, INTx fix in vfio-pci-core.ko: "
                                f"{img.meta['vfio_intx_fix']}")
    return 0


def cmd_build(s: Session) -> int:
    out = {}
    with s.builder() as b:
        for prof in arches(s.args.arch):
            l2 = b.l2(prof)
            l1 = b.l1(prof, s.args.l1_vfio)
            out[prof.name] = {"l1": str(l1.initrd.parent), "l2": str(l2.initrd.parent),
                              "kernel": l1.kernel_version,
                              "kernel_package": l1.meta["kernel_package"],
                              "vfio_intx_fix": l1.meta["vfio_intx_fix"]}
    print(json.dumps(out, indent=1))
    return 0


def cmd_boot(s: Session) -> int:
    from .boot import boot_once
    return boot_once(s, profile(s.args.arch))


def cmd_run(s: Session) -> int:
    from .run import run_chain
    return run_chain(s, profile(s.args.arch))


def cmd_finding(s: Session) -> int:
    from .findings import intx_probe_writes
    for prof in arches(s.args.arch):
        r = intx_probe_writes(s, prof, Path(s.args.out) / prof.name if s.args.out else None)
        verb = "probes" if r["probed"] else "never probes"
        print(f"{prof.name}: L1 kernel {r['kernel']} {verb} INTx masking: writes to pci-serial's "
              f"command register {', '.join(r['command_writes']) or 'none'} (QEMU trace, {r['log']})")
    return 0


def cmd_matrix(s: Session) -> int:
    from . import matrix
    cells = matrix.select(matrix.all_cells(), s.args.slow, s.args.shard, s.args.cells)
    if s.args.list:
        for c in matrix.all_cells():
            state = c.unavailable() or ("runs" if c in cells else "slow: --slow" if c.slow else "not picked (--shard, --cells)")
            print(f"{c.id:44} {c.expectation().verdict:6} {state}")
        return 0
    out = Path(s.args.out or f"results/matrix-{__import__('time').strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    jobs = host.parallel_chains() if s.args.jobs == "auto" else int(s.args.jobs)
    s.progress.step(f"{len(cells)} cells x {s.args.repeat} runs, {jobs} at a time")
    results = matrix.run_matrix(cells, out, s.args.repeat, s.args.cache_dir, s.args.duration,
                                s.args.pass_after, s.progress, jobs)
    print(matrix.table(results))
    print(f"results: {out}/matrix.json, {out}/junit.xml")
    for r in results:
        for d in r["l2_restarted"]:
            print(f"L2 RESTARTED {r['id']}: its L2 failed to boot {d['l2_boot_failures']} time(s) before "
                  f"the drive (result.json chain.l2_boot_failures); verdict {d['verdict']}; logs in {d['out']}")
    bad = [r for r in results if r["agreement"] < 1]
    for r in bad:
        for d in r["disagreements"]:
            print(f"DISAGREEMENT {r['id']}: expected {r['expected']}, got {d['verdict']} "
                  f"({d['reason']}); logs in {d['out']}")
    return 1 if bad else 0


def jobs_arg(value: str) -> str:
    if value == "auto" or (value.isdigit() and int(value) > 0):
        return value
    raise argparse.ArgumentTypeError(f"{value!r}: a positive number or auto")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rig", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"intx-rig {__version__}")
    p.add_argument("--cache-dir", help="cache directory (default $XDG_CACHE_HOME/intx-rig)")
    p.add_argument("--refresh", action="store_true",
                   help="resolve Debian package versions again instead of using the recorded lock")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.add_argument("--bisect", action="store_true",
                   help="for `git bisect run`: bad input exits 125 (skip this commit), not 2")
    sub = p.add_subparsers(dest="subcommand", required=True)
    sub.add_parser("doctor", help="report what the host has and what the rig will use")
    sp = sub.add_parser("setup", help="install host packages, fetch QEMU, build images")
    sp.add_argument("--arch", default="all", help="x86_64, ppc64 or all (default)")
    sp.add_argument("--qemu", help="use this qemu-system-* binary for L0")
    sp.add_argument("--host-only", action="store_true",
                    help="only install the missing host packages")
    sb = sub.add_parser("build", help="build (or find in the cache) the L1 and L2 images")
    sb.add_argument("--arch", default="all", help="x86_64, ppc64 or all (default)")
    sb.add_argument("--l1-vfio", default="fixed", choices=("fixed", "unfixed"),
                    help="L1's vfio modules: Debian's (fixed) or rebuilt without the INTx fix")
    bo = sub.add_parser("boot", help="boot L1, run a command over SSH, power off")
    bo.add_argument("--arch", required=True, help="x86_64 or ppc64")
    bo.add_argument("--accel", default="auto", choices=("auto", "kvm", "tcg"),
                    help="L1 accelerator (auto: KVM only where /dev/kvm runs a guest)")
    bo.add_argument("--qemu", help="use this qemu-system-* binary for L0")
    bo.add_argument("--kernel", help="boot this L1 kernel instead of the image's")
    bo.add_argument("--command", default="uname -a; grep -c . /proc/interrupts",
                    help="command to run in L1 over SSH")
    bo.add_argument("--out", help="directory for logs (default: a temporary one, removed)")
    bo.add_argument("--timeout", type=float, default=300, help="boot timeout in seconds")
    fi = sub.add_parser("finding-intx-probe",
                        help="show (QEMU pci_cfg_write trace) whether L1's kernel probes INTx masking")
    fi.add_argument("--arch", default="all", help="x86_64, ppc64 or all (default)")
    fi.add_argument("--out", help="keep the logs here")
    ma = sub.add_parser("matrix", help="every cell against its expected verdict (exit 1 on any "
                                       "disagreement)")
    ma.add_argument("--repeat", type=int, default=1, help="runs per cell")
    ma.add_argument("--shard", help="K/N: run the K-th of N deterministic shares of the cells")
    ma.add_argument("--slow", action="store_true", help="include TCG-inside-TCG L2 cells")
    ma.add_argument("--cells", help="only cells whose id matches one of these comma-separated "
                                    "globs, e.g. 'ppc64-xive-*,*-userspace'")
    ma.add_argument("--jobs", default="auto", type=jobs_arg,
                    help="runs at a time (default auto: one per core, as memory allows; RIG_JOBS)")
    ma.add_argument("--list", action="store_true", help="list the cells and expectations, run nothing")
    ma.add_argument("--duration", type=float, default=60)
    ma.add_argument("--pass-after", type=int, default=100)
    ma.add_argument("--out", help="results directory (default results/matrix-<time>)")
    ru = sub.add_parser("run", help="the nested chain: drive interrupts, give a verdict "
                                    "(exit 0 PASS, 1 STALL, 125 ERROR)")
    ru.add_argument("--arch", required=True, help="x86_64 or ppc64")
    ru.add_argument("--ic", help="L0 interrupt controller: xive (default) or xics on ppc64")
    ru.add_argument("--duration", type=float, default=60, help="seconds of driving at most")
    ru.add_argument("--stall-window", type=float, default=5,
                    help="STALL when pending work and no count moved for this long (s)")
    ru.add_argument("--device", choices=("pci-serial", "legacy", "legacy-2.3"),
                    help="the device under test: QEMU's pci-serial (INTx-maskable; vfio-pci "
                         "nointxmask=1 fakes legacy), the PCI 2.2 UART over vfio-user (legacy), "
                         "or its PCI 2.3 twin; default: legacy where usable")
    ru.add_argument("--pass-after", type=int, default=0, metavar="N",
                    help="PASS as soon as N interrupts were serviced and a stall window went by "
                         "(default 0: drive for the whole --duration)")
    ru.add_argument("--l2-accel", default="auto", choices=("auto", "kvm", "tcg"))
    ru.add_argument("--l1-vfio", default="fixed", choices=("fixed", "unfixed"),
                    help="L1's vfio modules: Debian's (with the INTx fix) or rebuilt without it")
    ru.add_argument("--l1-smp", type=int, default=1, help="L1 vCPUs")
    ru.add_argument("--consumer", default="l2", choices=("l2", "userspace"),
                    help="who services the device: an L2 guest (default), or a userspace VFIO "
                         "program in L1 (fast mode, no L2)")
    ru.add_argument("--kernel", help="the L1 kernel under test (vmlinux, bzImage or vmlinuz)")
    ru.add_argument("--modules", help="its modules: lib/modules/<release> or an INSTALL_MOD_PATH root")
    ru.add_argument("--kernel-deb", help="the L1 kernel under test as a Debian/Ubuntu linux-image .deb")
    ru.add_argument("--qemu", help="use this qemu-system-* binary for L0")
    ru.add_argument("--boot-timeout", type=float, default=None,
                    help="per-guest boot timeout in s (default 400; an L2 under TCG: 1200)")
    ru.add_argument("--out", help="results directory (default results/<arch>-<ic>-<time>)")
    return p


class _Terminated(KeyboardInterrupt):
    """SIGTERM/SIGHUP, handled like Ctrl-C: unwind and clean up."""


def _on_signal(signum, frame):
    raise _Terminated()


COMMANDS = {"doctor": cmd_doctor, "setup": cmd_setup, "build": cmd_build, "boot": cmd_boot,
            "run": cmd_run, "finding-intx-probe": cmd_finding, "matrix": cmd_matrix}


def main(argv: list[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
    except SystemExit as e:  # argparse: usage errors are exit 2 already
        return int(e.code or 0)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    # Started with SIGINT ignored (a script's background job, a pytest-xdist worker), Python
    # would leave it ignored: Ctrl-C or kill -INT must still unwind and clean up.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        reap_stale()
        return COMMANDS[args.subcommand](Session(args))
    except UserError as e:
        print(f"rig: error: {e}", file=sys.stderr)
        return 125 if args.bisect else e.exit_status
    except InfraError as e:
        print(f"rig: ERROR: {e}", file=sys.stderr)
        return e.exit_status
    except RigError as e:
        print(f"rig: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("rig: interrupted; cleaned up", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

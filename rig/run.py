"""`rig run`: the nested chain with the stock pci-serial device, and its verdict.

Exit status for `git bisect run`: 0 PASS, 1 STALL, 125 ERROR (bisect: skip), 2 bad input.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from guest_images.build import KernelSource

from . import kernel_input
from .accel import choose_accel
from .chain import L2_KVM_HANG_S, Chain, DriveConfig
from .devices import make_device
from .vfio_user_probe import vfio_user_usable
from .errors import InfraError, UserError
from .guest import GuestConfig, L1Guest
from .kernel_input import KernelUnderTest
from .qemu_binary import MINIMUM_VERSION
from .results import write_junit, write_result_json
from .timeline import write_timeline
from .runtime import RunDir
from .targets import TargetProfile
from .verdict import ERROR, STALL, Verdict, describe_stop, pending_since


@dataclasses.dataclass
class ChainOptions:
    ic: str | None = None
    l1_vfio: str = "fixed"
    l2_accel: str = "auto"
    l1_smp: int = 1
    boot_timeout: float | None = None       # None: each guest's default (rig.chain)
    l2_hang_s: float = L2_KVM_HANG_S        # a KVM L2 not up by then is restarted once
    kernel: KernelUnderTest | None = None   # a user's L1 kernel instead of Debian's
    consumer: str = "l2"                    # who services the device: L2, or L1 userspace
    device: str | None = None               # pci-serial, legacy, legacy-2.3; None: the default


def l1_image(s, prof: TargetProfile, opts: ChainOptions, record: dict):
    """The L1 image: Debian's kernel (vfio as shipped or rebuilt unfixed), or the user's."""
    with s.builder() as b:
        if opts.kernel is None:
            return b.l1(prof, opts.l1_vfio)
        if opts.l1_vfio != "fixed":
            raise UserError("--l1-vfio unfixed rebuilds Debian's module; with --kernel, build "
                            "your kernel with or without the fix instead")
        k = opts.kernel
        for w in k.warnings:
            s.progress.note(f"warning: {w}")
        record["l1_kernel_input"] = {"source": k.source, "version_string": k.version_string,
                                     "config": k.config_source, "warnings": k.warnings}
        return b.l1_with_kernel(prof, KernelSource(k.kernel, k.modules_dir, k.release,
                                                   {"from": k.source, "version_string": k.version_string}))

@contextmanager
def running_chain(s, prof: TargetProfile, out: Path, opts: ChainOptions,
                  record: dict) -> Iterator[Chain]:
    """L0 -> L1 -> L2 up, the device bound and read in L2; torn down on exit however it
    ends. `record` is filled with what the result file needs as it becomes known."""
    ic = opts.ic or prof.interrupt_controllers[0]
    prof.l1_machine("tcg", ic)  # validates --ic for this arch before anything starts
    qemu = s.qemu(prof)
    qemu.require(MINIMUM_VERSION, f"running {prof.name}")
    accel = choose_accel(prof, qemu, "auto")
    image = l1_image(s, prof, opts, record)
    s.progress.step(f"L0 QEMU: {qemu.describe()}; L1 accelerator: {accel}; L1 vfio-pci-core.ko "
                    f"{'has' if image.meta['vfio_intx_fix'] else 'lacks'} the INTx fix")
    kind, why = choose_device(opts.device, prof, qemu, s)
    s.progress.step(f"device: {kind} ({why})")
    record.update({"arch": prof.name, "ic": ic, "device": kind, "device_reason": why,
                   "consumer": opts.consumer,
                   "l0": {"qemu": qemu.describe(), "accel": accel.name, "accel_reason": accel.reason},
                   "l1": {"kernel": image.kernel_version, "kernel_package": image.meta["kernel_package"],
                          "vfio_modules": "the kernel under test's" if opts.kernel else opts.l1_vfio,
                          "vfio_rebuilt": image.meta["vfio_rebuilt"],
                          "vfio_intx_fix": image.meta["vfio_intx_fix"]}})
    with RunDir("run") as run_dir:
        device = make_device(kind, prof, qemu, run_dir, out)
        try:
            # A built-in vfio-pci reads nointxmask from the command line, a module from modprobe.
            config = GuestConfig(ic=ic, extra_args=device.qemu_args(), smp=opts.l1_smp,
                                 extra_cmdline="vfio_pci.nointxmask=1" if device.needs_nointxmask else "")
            with L1Guest(prof, qemu, image, accel, s.keys, run_dir, out, s.progress, config) as l1:
                record["l0"]["command"] = l1.machine.command_line()
                chain = Chain(prof, l1, device, out, s.progress, l2_accel=opts.l2_accel,
                              consumer=opts.consumer)
                record["_chain"] = chain
                try:
                    chain.start(boot_timeout=opts.boot_timeout, l2_hang_s=opts.l2_hang_s)
                    yield chain
                finally:
                    chain.close()
                l1.shutdown(timeout=20)  # only on the way out without an exception
        finally:
            device.close()


def choose_device(requested: str | None, prof: TargetProfile, qemu, s) -> tuple[str, str]:
    """The legacy (vfio-user) device where this QEMU and arch can run it, else pci-serial."""
    if requested == "pci-serial":
        return requested, "requested"
    ok, why = vfio_user_usable(prof, qemu, s.cache)
    if requested:
        if not ok:
            raise UserError(f"--device {requested} --arch {prof.name} is unsupported by this QEMU: {why}")
        return requested, "requested"
    if ok:
        return "legacy", "default: a true PCI 2.2 device over vfio-user"
    return "pci-serial", f"default; the legacy device is not usable here: {why}"


def run_chain(s, prof: TargetProfile) -> int:
    args = s.args
    opts = ChainOptions(ic=args.ic, l1_vfio=args.l1_vfio, l2_accel=args.l2_accel,
                        l1_smp=args.l1_smp, boot_timeout=args.boot_timeout, consumer=args.consumer,
                        device=args.device)
    ic = opts.ic or prof.interrupt_controllers[0]
    prof.l1_machine("tcg", ic)  # a wrong --ic is exit 2 before anything is created
    with tempfile.TemporaryDirectory(prefix="intx-rig-kernel-") as unpack:
        opts.kernel = user_kernel(args, prof, Path(unpack))
        return _run(s, prof, opts, ic)


def user_kernel(args, prof: TargetProfile, unpack: Path) -> KernelUnderTest | None:
    """Checked before anything boots: arch, modules version, required options."""
    if args.kernel_deb and args.kernel:
        raise UserError("give --kernel or --kernel-deb, not both")
    if args.kernel_deb:
        return kernel_input.from_deb(args.kernel_deb, prof, unpack)
    if args.kernel:
        return kernel_input.from_paths(args.kernel, args.modules, prof)
    if args.modules:
        raise UserError("--modules goes with --kernel")
    return None


def _run(s, prof: TargetProfile, opts: ChainOptions, ic: str) -> int:
    args = s.args
    out = Path(args.out or f"results/{prof.name}-{ic}-{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    print(f"results: {out}")
    cfg = DriveConfig(duration=args.duration, stall_window=args.stall_window, pass_after=args.pass_after)
    record: dict = {"drive": dataclasses.asdict(cfg)}
    t0 = time.monotonic()
    try:
        with running_chain(s, prof, out, opts, record) as chain:
            verdict = chain.drive(cfg)
    except InfraError as e:
        verdict = Verdict(ERROR, str(e))
    return report(out, record, record.pop("_chain", None), verdict, time.monotonic() - t0,
                  f"{prof.name}-{ic}-{opts.l1_vfio}-{opts.consumer}")


def report(out: Path, record: dict, chain: Chain | None, verdict: Verdict, seconds: float,
           name: str) -> int:
    samples = chain.samples if chain else []
    record.update({"verdict": verdict.to_json(), "seconds": round(seconds, 1),
                   "samples": [dataclasses.asdict(x) for x in samples]})
    if chain:
        record["chain"] = dataclasses.asdict(chain.facts)
        record["times"] = chain.times
        record["interrupt_path"] = chain.interrupt_path
    write_result_json(out, record)
    write_junit(out, name, verdict, seconds, f"logs in {out}")
    stall_at = pending_since(samples) if verdict.verdict == STALL else None
    path = chain.interrupt_path if chain else None
    write_timeline(out, samples, f"{name}: {verdict.verdict}", stall_at, path)
    print(f"{verdict.verdict}: {verdict.reason}")
    if samples:
        print(f"  {describe_stop(verdict)}")
    if path and path.get("stopped_layer"):
        print(f"  interrupt path: {path['explanation']}")
    if chain and chain.facts.l2_boot_failures:
        print(f"  L2 failed to boot {len(chain.facts.l2_boot_failures)} time(s) (result.json "
              f"chain.l2_boot_failures): {chain.facts.l2_boot_failures[-1]}")
    print(f"  results in {out} (result.json, junit.xml, timeline.png/.svg, console, QEMU and ftrace logs)")
    return verdict.exit_status

"""`rig run`: the nested chain with the stock pci-serial device, and its verdict.

Exit status for `git bisect run`: 0 PASS, 1 STALL, 125 ERROR (bisect: skip), 2 bad input.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from .accel import choose_accel
from .chain import Chain, DriveConfig, device_listener, pci_serial_args
from .errors import InfraError
from .guest import GuestConfig, L1Guest
from .qemu_binary import MINIMUM_VERSION
from .results import write_junit, write_result_json, write_timeline
from .runtime import RunDir
from .targets import TargetProfile
from .verdict import ERROR, STALL, Verdict, describe_stop, pending_since


def run_chain(s, prof: TargetProfile) -> int:
    args = s.args
    ic = args.ic or prof.interrupt_controllers[0]
    prof.l1_machine("tcg", ic)  # validates --ic for this arch before anything starts
    qemu = s.qemu(prof)
    qemu.require(MINIMUM_VERSION, f"running {prof.name}")
    accel = choose_accel(prof, qemu, "auto")
    out = Path(args.out or f"results/{prof.name}-{ic}-{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    with s.builder() as b:
        image = b.l1(prof)
    print(f"L0 QEMU: {qemu.describe()}\nL1 accelerator: {accel}\nresults: {out}")
    cfg = DriveConfig(duration=args.duration, stall_window=args.stall_window)
    t0 = time.monotonic()
    record = {"arch": prof.name, "ic": ic, "device": "pci-serial", "l0": {
        "qemu": qemu.describe(), "accel": accel.name, "accel_reason": accel.reason},
        "l1": {"kernel": image.kernel_version, "kernel_package": image.meta["kernel_package"],
               "vfio_nointxmask": True},
        "drive": dataclasses.asdict(cfg)}
    chain = None
    with RunDir("run") as run_dir:
        sock = run_dir / "dev0.sock"
        listener = device_listener(sock)
        config = GuestConfig(ic=ic, extra_args=pci_serial_args(prof, sock), smp=args.l1_smp)
        with L1Guest(prof, qemu, image, accel, s.keys, run_dir, out, s.progress, config) as l1:
            record["l0"]["command"] = l1.machine.command_line()
            try:
                chain = Chain(prof, l1, listener, out, s.progress, l2_accel=args.l2_accel)
                chain.start(boot_timeout=args.boot_timeout)
                verdict = chain.drive(cfg)
            except InfraError as e:
                verdict = Verdict(ERROR, str(e))
            finally:
                if chain:
                    chain.close()
                try:
                    l1.shutdown(timeout=20)
                except InfraError:
                    pass
    return report(s, out, record, chain, verdict, time.monotonic() - t0, f"{prof.name}-{ic}")


def report(s, out: Path, record: dict, chain: Chain | None, verdict: Verdict, seconds: float,
           name: str) -> int:
    samples = chain.samples if chain else []
    record.update({"verdict": verdict.to_json(), "seconds": round(seconds, 1),
                   "samples": [dataclasses.asdict(x) for x in samples]})
    if chain:
        record["chain"] = dataclasses.asdict(chain.facts)
        record["times"] = chain.times
    write_result_json(out, record)
    write_junit(out, name, verdict, seconds, f"logs in {out}")
    stall_at = pending_since(samples) if verdict.verdict == STALL else None
    write_timeline(out, samples, f"{name}: {verdict.verdict}", stall_at)
    print(f"{verdict.verdict}: {verdict.reason}")
    if samples:
        print(f"  {describe_stop(verdict)}")
    print(f"  results in {out} (result.json, junit.xml, timeline.svg, console and QEMU logs)")
    return verdict.exit_status

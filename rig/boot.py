"""`rig boot`: start L1 under QEMU, reach its console and SSH, run a command, power off."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from .accel import choose_accel
from .errors import InfraError
from .guest import GuestConfig, L1Guest
from .kernel_file import check_kernel
from .qemu_binary import MINIMUM_VERSION
from .runtime import RunDir
from .targets import TargetProfile


def boot_once(s, prof: TargetProfile) -> int:
    args = s.args
    kernel = check_kernel(args.kernel, prof) if args.kernel else None
    qemu = s.qemu(prof)
    qemu.require(MINIMUM_VERSION, f"booting {prof.name}")
    accel = choose_accel(prof, qemu, args.accel)
    print(f"L0 QEMU: {qemu.describe()}")
    print(f"L1 accelerator: {accel}")
    with s.builder() as b:
        image = b.l1(prof)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="intx-rig-boot-"))
    try:
        with RunDir("boot") as run_dir, \
                L1Guest(prof, qemu, image, accel, s.keys, run_dir, out, s.progress,
                        GuestConfig(kernel=kernel)) as guest:
            try:
                times = guest.boot(timeout=args.timeout)
                result = guest.ssh.run(args.command, timeout=120)
            except InfraError as e:
                raise InfraError(f"{e} (console log: {guest.machine.console_log})") from None
            print(result.stdout, end="")
            if result.stderr:
                print(result.stderr, end="")
            how = guest.shutdown()
        summary = {"arch": prof.name, "accel": accel.name, "qemu": qemu.describe(),
                   "kernel": guest.kernel_release, "console_ready_s": round(times.console_ready, 2),
                   "ssh_ready_s": round(times.ssh_ready, 2), "command_status": result.status,
                   "shutdown": how}
        print(json.dumps(summary))
        (out / "boot.json").write_text(json.dumps(summary, indent=1))
        return 0 if result.status == 0 else 1
    finally:
        if not args.out:
            shutil.rmtree(out, ignore_errors=True)

"""Which accelerator L1 gets: KVM only where /dev/kvm really runs a guest of that arch.

/dev/kvm existing is not enough (a nested host may create VMs that never run): the probe
boots a 16-byte firmware that writes to isa-debug-exit, and KVM counts only if QEMU
exits with the code that write produces.
"""

from __future__ import annotations

import os
import platform
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rig.core import timeouts
from rig.core.errors import UserError
from rig.core.targets import TargetProfile
from rig.host.qemu import QemuBinary

# Reset vector at 0xFFFF0 (last 16 bytes of a 64 KiB BIOS): mov al,0x31; out 0xf4,al; hlt.
_RESET_CODE = bytes([0xB0, 0x31, 0xE6, 0xF4, 0xF4, 0xEB, 0xFD])
_EXIT_CODE = (0x31 << 1) | 1


@dataclass(frozen=True)
class Accel:
    name: str      # "kvm" or "tcg"
    reason: str    # why, for every run's output

    def qemu_args(self) -> list[str]:
        return ["-accel", self.name] if self.name == "kvm" else ["-accel", "tcg,thread=multi"]

    def __str__(self) -> str:
        return f"{self.name.upper()} ({self.reason})"


def probe_bios() -> bytes:
    bios = bytearray(b"\xf4" * 65536)
    bios[0xFFF0:0xFFF0 + len(_RESET_CODE)] = _RESET_CODE
    return bytes(bios)


def cpu_has_virtualization(cpuinfo: str) -> bool:
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    return bool(flags & {"vmx", "svm"})


def kvm_runs_guest(qemu: QemuBinary, timeout: float = timeouts.KVM_PROBE_S) -> tuple[bool, str]:
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "/dev/kvm missing or not accessible"
    # Seen on a nested host: /dev/kvm creates VMs and runs a few real-mode instructions,
    # but a real kernel dies on an emulation failure. Without vmx/svm the CPU model the
    # guest gets is not one KVM can run.
    if not cpu_has_virtualization(Path("/proc/cpuinfo").read_text()):
        return False, "/dev/kvm exists but the CPU shows no vmx/svm (nested without virtualization)"
    with tempfile.TemporaryDirectory(prefix="intx-rig-kvmprobe-") as d:
        bios = Path(d) / "bios.bin"
        bios.write_bytes(probe_bios())
        argv = qemu.argv("-M", "pc", "-accel", "kvm", "-nodefaults", "-display", "none",
                         "-bios", str(bios), "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04")
        try:
            r = subprocess.run(argv, env={**os.environ, **qemu.env}, capture_output=True,
                               text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return False, f"a KVM test guest did not finish within {timeout:.0f} s"
    if r.returncode == _EXIT_CODE:
        return True, "/dev/kvm ran a test guest"
    why = (r.stderr.strip().splitlines() or [f"exit status {r.returncode}"])[-1]
    return False, f"/dev/kvm did not run a test guest: {why}"


def choose_accel(profile: TargetProfile, qemu: QemuBinary, requested: str = "auto") -> Accel:
    host = platform.machine()
    if requested == "tcg":
        return Accel("tcg", "requested")
    if host not in profile.host_machines:
        return Accel("tcg", f"{profile.name} guest on a {host} host")
    ok, why = kvm_runs_guest(qemu)
    if ok:
        return Accel("kvm", why)
    if requested == "kvm":
        raise UserError(f"--accel kvm asked for, but {why}")
    return Accel("tcg", why)

"""Which accelerator L1 gets: KVM only where /dev/kvm really runs a guest of that arch.

/dev/kvm existing is not enough (a nested host may create VMs that never run): for x86 the
probe boots a 16-byte firmware that writes to isa-debug-exit, and KVM counts only if QEMU
exits with the code that write produces. For pseries the probe creates a KVM VM and asks
QEMU whether KVM is on (weaker: it cannot run code without firmware; not yet tried on a
POWER host). Where L2 runs follows from the host's nesting (rig.host.virt).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rig.core import timeouts
from rig.core.errors import UserError
from rig.core.kinds import Accelerator
from rig.core.targets import MachineProfile, TargetProfile
from rig.host import virt
from rig.host.profiles import HostProfile, host_profile
from rig.host.qemu import QemuBinary

# Reset vector at 0xFFFF0 (last 16 bytes of a 64 KiB BIOS): mov al,0x31; out 0xf4,al; hlt.
_RESET_CODE = bytes([0xB0, 0x31, 0xE6, 0xF4, 0xF4, 0xEB, 0xFD])
_EXIT_CODE = (0x31 << 1) | 1


@dataclass(frozen=True)
class Accel:
    name: str      # "kvm" or "tcg"
    reason: str    # why, for every run's output
    plan: virt.VirtPlan | None = None   # what the host means for L1 and L2

    @property
    def l1_nests(self) -> bool:
        """Whether L1 gets virtualization to offer L2: always emulated under TCG; under KVM
        only if the host nests."""
        return self.name == Accelerator.TCG or self.plan is None or self.plan.l2 == Accelerator.KVM

    def qemu_args(self) -> list[str]:
        return ["-accel", self.name] if self.name == Accelerator.KVM else ["-accel", "tcg,thread=multi"]

    def __str__(self) -> str:
        return f"{self.name.upper()} ({self.reason})"


def probe_bios() -> bytes:
    bios = bytearray(b"\xf4" * 65536)
    bios[0xFFF0:0xFFF0 + len(_RESET_CODE)] = _RESET_CODE
    return bytes(bios)


def _run(qemu: QemuBinary, argv: list[str], stdin: str | None, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env={**os.environ, **qemu.env}, capture_output=True, text=True,
                          input=stdin, timeout=timeout)


def _test_guest(qemu: QemuBinary, profile: TargetProfile, timeout: float) -> tuple[bool, str]:
    with tempfile.TemporaryDirectory(prefix="intx-rig-kvmprobe-") as d:
        bios = Path(d) / "bios.bin"
        bios.write_bytes(probe_bios())
        r = _run(qemu, qemu.argv("-M", "pc", "-accel", Accelerator.KVM, "-nodefaults", "-display", "none",
                                 "-bios", str(bios), "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"),
                 None, timeout)
    if r.returncode == _EXIT_CODE:
        return True, "/dev/kvm ran a test guest"
    why = (r.stderr.strip().splitlines() or [f"exit status {r.returncode}"])[-1]
    return False, f"/dev/kvm did not run a test guest: {why}"


def _create_vm(qemu: QemuBinary, profile: TargetProfile, timeout: float) -> tuple[bool, str]:
    machine = profile.kvm_probe_machine
    r = _run(qemu, qemu.argv("-M", machine, "-accel", Accelerator.KVM, "-nodefaults", "-display", "none", "-S",
                             "-monitor", "stdio"), "info kvm\nquit\n", timeout)
    if "kvm support: enabled" in r.stdout:
        return True, "/dev/kvm created a VM"
    why = (r.stderr.strip().splitlines() or [f"exit status {r.returncode}"])[-1]
    return False, f"/dev/kvm did not create a {machine} VM: {why}"


PROBES = {"test-guest": _test_guest, "create-vm": _create_vm}


def kvm_runs_guest(qemu: QemuBinary, profile: TargetProfile,
                   timeout: float = timeouts.KVM_PROBE_S) -> tuple[bool, str]:
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "/dev/kvm missing or not accessible"
    try:
        return PROBES[profile.kvm_probe](qemu, profile, timeout)
    except subprocess.TimeoutExpired:
        return False, f"a KVM test guest did not finish within {timeout:.0f} s"


def host_plan(profile: TargetProfile, qemu: QemuBinary, host: HostProfile | None = None) -> virt.VirtPlan:
    """What this host offers the target's L1 and L2 (rig doctor prints it, runs record it)."""
    host = host or host_profile()
    cpuinfo = virt.read_sys("/proc/cpuinfo") or ""
    native = host.kvm_target == profile.name and virt.kvm_module_for(profile.l2.kvm_modules, cpuinfo)
    # The probe starts a QEMU: only where KVM could be used at all.
    kvm = kvm_runs_guest(qemu, profile) if native else (False, "")
    return virt.plan(host, profile, cpuinfo, kvm)


def choose_accel(profile: TargetProfile, qemu: QemuBinary, requested: str = "auto",
                 machine: MachineProfile | None = None) -> Accel:
    if requested == Accelerator.TCG:
        return Accel(Accelerator.TCG, "requested")
    if machine and machine.tcg_only:
        return Accel(Accelerator.TCG, machine.tcg_only)
    p = host_plan(profile, qemu)
    if p.l1 == Accelerator.KVM:
        return Accel(Accelerator.KVM, p.l1_why, p)
    if requested == Accelerator.KVM:
        raise UserError(f"--accel kvm asked for, but {p.l1_why}")
    return Accel(Accelerator.TCG, p.l1_why, p)

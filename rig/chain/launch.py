"""One way to L1, for `rig run`, `rig boot` and the `finding-*` commands: the L0 stage (the
QEMU that runs L1, checked, and its accelerator), then L1 started from an image in a run
directory. What differs between them is only the image and the GuestConfig they pass."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from guest_images.build import GuestImage
from rig.chain.facts import L0Facts
from rig.chain.session import Session
from rig.core.cache import sha256_file
from rig.core.targets import MachineProfile, TargetProfile, profile
from rig.guests.l1 import GuestConfig, L1Guest
from rig.host.accel import Accel, choose_accel
from rig.host.qemu import MINIMUM_VERSION, QemuBinary
from rig.host.rundir import RunDir


@dataclass(frozen=True)
class L0:
    """The L0 stage's result: which QEMU runs L1 on which machine, under which accelerator."""

    machine: MachineProfile
    qemu: QemuBinary
    accel: Accel

    @property
    def profile(self) -> TargetProfile:
        return profile(self.machine.arch)

    def describe(self) -> str:
        return f"L0 QEMU: {self.qemu.describe()}; L1 accelerator: {self.accel}"

    def facts(self) -> L0Facts:
        plan = self.accel.plan
        return L0Facts(self.qemu.describe(), self.accel.name, self.accel.reason, plan.l2_why if plan else "",
                       qemu_sha256=sha256_file(self.qemu.path))

    def l1(self, s: Session, image: GuestImage, run_dir: RunDir, logs: Path, config: GuestConfig) -> L1Guest:
        """L1 of this L0 from `image`, not started yet (a context manager: `with` it, then
        boot it); its sockets in run_dir, its console and QEMU logs in `logs`."""
        return L1Guest(self.profile, self.qemu, image, self.accel, s.keys, run_dir, logs, s.progress, config)


def start_l0(s: Session, machine: MachineProfile, requested_accel: str = "auto", purpose: str = "running") -> L0:
    """The L0 stage: the QEMU for the machine's arch (the rig's own or --qemu), refused if
    too old to run it, and the accelerator this host gives L1 (`requested_accel`: auto, kvm
    or tcg)."""
    prof = profile(machine.arch)
    qemu = s.qemu(prof)
    qemu.require(MINIMUM_VERSION, f"{purpose} {prof.name}")
    return L0(machine, qemu, choose_accel(prof, qemu, requested_accel, machine))

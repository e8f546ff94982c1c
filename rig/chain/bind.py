"""L1 takes the device from its driver and gives it to vfio-pci (rig/chain/sh/bind.sh)."""

from __future__ import annotations

from dataclasses import dataclass

from rig.core import timeouts
from rig.core.errors import InfraError
from rig.core.shell import guest_script
from rig.core.targets import KvmModule, TargetProfile
from rig.guests.ssh import GuestSSH


@dataclass(frozen=True)
class Bound:
    device: str               # L1's PCI address of the device
    group: str                # its IOMMU group
    kvm: bool                 # /dev/kvm in L1 after loading the KVM module
    nointxmask: bool
    disintx_writable: bool    # whether the command register's bit 10 sticks (PCI 2.3)
    irq_count: int | None = None   # the IRQ's count before vfio took it (None: no driver had it)

    @property
    def non_2_3(self) -> bool:
        """vfio takes its non-2.3 INTx path: told so (nointxmask), or the device cannot mask
        INTx itself (vfio_pci_core_enable(): pci_intx_mask_supported())."""
        return self.nointxmask or not self.disintx_writable


def parse_facts(line: str) -> dict[str, str]:
    return dict(f.split("=", 1) for f in line.split() if "=" in f)


def bind_command(profile: TargetProfile, pci_id: tuple[str, str], nointxmask: bool, kvm: KvmModule | None) -> str:
    """bind.sh's command for the device with these IDs (("-", "-"): the modules alone); `kvm`
    is the module L1's CPU can use for L2 (None: no KVM)."""
    kvm_args = (kvm.name, *kvm.args) if kvm else ()
    return guest_script("rig.chain", "bind.sh", *pci_id, "nointxmask=1" if nointxmask else "",
                        profile.l2.iommu_module, *kvm_args)


def bind_in_l1(ssh: GuestSSH, profile: TargetProfile, pci_id: tuple[str, str], nointxmask: bool,
               kvm: KvmModule | None) -> Bound:
    r = ssh.run(bind_command(profile, pci_id, nointxmask, kvm), timeout=timeouts.BIND_S)
    if r.status != 0:
        raise InfraError(f"L1: binding the device to vfio-pci failed: {r.stderr.strip()[-300:]}")
    lines = r.stdout.strip().splitlines()
    if not lines:
        raise InfraError(f"L1: the bind script said nothing: {r.stderr.strip()[-300:]}")
    facts = parse_facts(lines[-1])
    try:
        count = facts.get("irqcount", "none")
        return Bound(facts["dev"], facts["group"], facts["kvm"] == "yes", facts["nointxmask"] == "Y",
                     facts["disintx_writable"] == "yes", int(count) if count.isdigit() else None)
    except KeyError as e:
        raise InfraError(f"L1: the bind script's facts lack {e}: {lines[-1]!r}") from e


def load_modules_in_l1(ssh: GuestSSH, profile: TargetProfile, nointxmask: bool, kvm: KvmModule | None) -> bool:
    """What the bind loads, before the device is in L1 (it joins a saved chain later);
    whether L1 has /dev/kvm then."""
    r = ssh.run(bind_command(profile, ("-", "-"), nointxmask, kvm), timeout=timeouts.BIND_S)
    facts = parse_facts(r.stdout.strip().splitlines()[-1]) if r.stdout.strip() else {}
    if r.status != 0 or "kvm" not in facts:
        raise InfraError(f"L1: loading vfio's modules failed: {(r.stderr or r.stdout).strip()[-300:]}")
    return facts["kvm"] == "yes"

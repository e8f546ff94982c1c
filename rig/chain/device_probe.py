"""Can this L0 QEMU run the vfio-user legacy device on this machine type? A short probe,
cached per QEMU binary and target.

Why a probe and not a version check: QEMU 11.1.3 aborts at pseries machine reset with a
vfio-user device ("Object ... is not an instance of type vfio-iommu-legacy": the sPAPR
PHB's EEH code casts every VFIO container to the legacy type; docs/findings/). Probing
the behaviour lets the cell run by itself once a fixed QEMU is used.
"""

from __future__ import annotations

import hashlib
import os
import subprocess

from rig.core import timeouts
from rig.core.cache import Cache
from rig.core.kinds import Accelerator
from rig.core.targets import MachineProfile
from rig.host.children import die_with_parent
from rig.host.qemu import QemuBinary
from rig.host.rundir import RunDir

FINDING = "docs/findings/qemu-spapr-eeh-vfio-user-abort.md"
LEGACY_CAST = "is not an instance of type vfio-iommu-legacy"


def qemu_identity(qemu: QemuBinary) -> str:
    st = qemu.path.stat()
    return hashlib.sha256(f"{qemu.path}:{st.st_size}:{st.st_mtime_ns}:{qemu.version_text}".encode()).hexdigest()[:16]


def vfio_user_usable(mach: MachineProfile, qemu: QemuBinary, cache: Cache) -> tuple[bool, str]:
    if not qemu.has_device("vfio-user-pci"):
        return False, f"{qemu.describe()} has no vfio-user-pci (QEMU >= 10.1 has it)"
    key = ("probes", f"vfio-user-{mach.key}-{qemu_identity(qemu)}.json")
    found = cache.read_json(*key)
    if found is None:
        ok, why = probe(mach, qemu)
        found = {"ok": ok, "why": why}
        cache.write_json(found, *key)
    return found["ok"], found["why"]


def probe(mach: MachineProfile, qemu: QemuBinary, timeout: float = timeouts.VFIO_USER_PROBE_S) -> tuple[bool, str]:
    """Create the machine with the device (creation resets it), reset it once more over the
    human monitor on stdin, and see whether QEMU is still there to say its status twice."""
    from rig.chain.device import LegacyDevice
    with RunDir("probe") as run_dir:
        device = LegacyDevice(mach, run_dir)
        try:
            argv = qemu.argv("-M", mach.l1_machine(Accelerator.TCG), "-accel", Accelerator.TCG,
                             *(("-cpu", mach.cpu) if mach.cpu else ()),
                             "-m", "2048", "-S", "-nodefaults", "-display", "none", "-monitor", "stdio",
                             *[a for d in mach.l1_devices for a in ("-device", d)], *device.qemu_args())
            try:
                r = subprocess.run(argv, input="info status\nsystem_reset\ninfo status\nquit\n",
                                   capture_output=True, text=True, timeout=timeout,
                                   env={**os.environ, **qemu.env}, preexec_fn=die_with_parent())
            except subprocess.TimeoutExpired:
                return False, f"QEMU with a vfio-user device did not answer within {timeout:.0f} s"
        finally:
            device.close()
    if r.returncode == 0 and r.stdout.count("VM status:") == 2:
        return True, "machine reset with the vfio-user device works"
    lines = [ln.strip() for ln in r.stderr.splitlines() if ln.strip()]
    cast = next((ln for ln in lines if LEGACY_CAST in ln), None)
    if cast:
        return False, (f"QEMU aborts at {mach.name} machine reset with a vfio-user "
                       f"device ({cast.split(': ', 1)[-1]}); see {FINDING}")
    return False, (f"QEMU did not survive a reset with the vfio-user device (exit {r.returncode}): "
                   f"{' | '.join(lines[-2:])}")

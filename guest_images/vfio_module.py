"""The L1 kernel without the vfio INTx fix: the same Debian kernel with only vfio-pci-core.ko
and vfio-pci.ko rebuilt from Debian's linux-source with the fix's lines removed.

Upstream 8b9f128947dd sets IRQ_DISABLE_UNLAZY on the host IRQ of a non-PCI-2.3 device in
vfio_intx_enable() (and clears it on the error path and in vfio_intx_disable()). The
rebuild is an out-of-tree build against that kernel's own headers (guest_images.kbuild).
Whether a module has the fix is read from the binary: with it, vfio-pci-core.ko calls
irq_modify_status (irq_set_status_flags is an inline wrapper).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tarfile
from pathlib import Path

from rig.core.cache import Cache, content_key, tree_hash
from rig.core.errors import UserError
from rig.core.progress import Progress
from rig.core.targets import TargetProfile
from rig.debian.packages import Resolver
from rig.host.profiles import HostProfile, host_profile
from rig.kernel.fix_state import module_has_fix

from .kbuild import KernelHeaders, compiler

VFIO_PCI_DIR = "drivers/vfio/pci"
MODULES = ("vfio-pci-core.ko", "vfio-pci.ko")
FIX_LINES = re.compile(r"\n[ \t]*if \(!vdev->pci_2_3\)\n[ \t]*"
                       r"irq_(?:set|clear)_status_flags\(pdev->irq, IRQ_DISABLE_UNLAZY\);")
# Just the two modules: the directory's own Makefile would also build mlx5, pds, ...
KBUILD = """vfio-pci-core-y := vfio_pci_core.o vfio_pci_intrs.o vfio_pci_rdwr.o vfio_pci_config.o
obj-m += vfio-pci-core.o
vfio-pci-y := vfio_pci.o
vfio-pci-$(CONFIG_VFIO_PCI_IGD) += vfio_pci_igd.o
obj-m += vfio-pci.o
"""


def remove_fix(source: str) -> str:
    patched, n = FIX_LINES.subn("", source)
    if n == 0 or "IRQ_DISABLE_UNLAZY" in patched:
        raise UserError("the vfio INTx fix's lines were not found as expected in "
                        "vfio_pci_intrs.c of this linux-source: the rig's patch needs updating")
    return patched


def extract_source_dir(source_deb: Path, subdir: str, dest: Path) -> Path:
    """Stream linux-source-X.tar.xz out of its .deb and unpack only `subdir` from it."""
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(source_deb)], stdout=subprocess.PIPE)
    found = None
    try:
        assert proc.stdout is not None      # PIPE
        with tarfile.open(fileobj=proc.stdout, mode="r|") as outer:
            for member in outer:
                if re.fullmatch(r"\./usr/src/linux-source-[\d.]+\.tar\.xz", member.name):
                    with tarfile.open(fileobj=outer.extractfile(member), mode="r|xz") as inner:
                        for m in inner:
                            top, _, rest = m.name.partition("/")
                            if rest.startswith(subdir + "/") and (m.isfile() or m.isdir()):
                                inner.extract(m, dest, filter="data")
                                found = dest / top / subdir
                    break
    finally:
        if proc.stdout:
            proc.stdout.close()
        proc.wait()
    if not found:
        raise UserError(f"{source_deb.name} holds no {subdir}")
    return found


class UnfixedVfio:
    """Builds (once, cached) the two vfio modules without the fix for one kernel."""

    def __init__(self, cache: Cache, resolver: Resolver, progress: Progress, host: HostProfile | None = None):
        self.cache, self.resolver, self.progress = cache, resolver, progress
        self.host = host or host_profile()

    def modules(self, profile: TargetProfile, kernel_release: str) -> dict[str, Path]:
        kbuild = KernelHeaders(self.resolver, self.host, profile, kernel_release)
        key = content_key("vfio-unfixed", profile.name, *kbuild.keys(),
                          tree_hash([Path(__file__), Path(__file__).with_name("kbuild.py")]))
        entry = self.cache.build("vfio-unfixed", key, lambda tmp: self._build(tmp, kbuild))
        return {m: entry / m for m in MODULES}

    def _build(self, out: Path, kbuild: KernelHeaders) -> dict:
        self.progress.step(f"rebuilding vfio-pci-core.ko for {kbuild.release} without the INTx fix")
        work = out / "work"
        headers, debs = kbuild.unpack(work)
        source_deb = next(p for n, p in debs.items() if n.startswith("linux-source-"))
        self.progress.note("unpacking drivers/vfio/pci from linux-source (streamed)")
        src = extract_source_dir(source_deb, VFIO_PCI_DIR, work / "src")
        intrs = src / "vfio_pci_intrs.c"
        intrs.write_text(remove_fix(intrs.read_text()))
        (src / "Makefile").write_text(KBUILD)
        kbuild.make(headers, src, "vfio-pci-core.ko")
        for m in MODULES:
            shutil.copy2(src / m, out / m)
        fixed = module_has_fix((out / "vfio-pci-core.ko").read_bytes())
        if fixed:
            raise UserError("the rebuilt vfio-pci-core.ko still calls irq_modify_status")
        shutil.rmtree(work)
        return {"kernel_release": kbuild.release, "compiler": compiler(kbuild.profile, self.host),
                "vfio_intx_fix": fixed, "source": source_deb.name,
                "patch": "removed IRQ_DISABLE_UNLAZY set/clear"}

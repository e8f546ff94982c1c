"""The L1 kernel without the vfio INTx fix: the same Debian kernel with only vfio-pci-core.ko
and vfio-pci.ko rebuilt from Debian's linux-source with the fix's lines removed.

Upstream 8b9f128947dd sets IRQ_DISABLE_UNLAZY on the host IRQ of a non-PCI-2.3 device in
vfio_intx_enable() (and clears it on the error path and in vfio_intx_disable()). The
rebuild uses that kernel's own headers (its .config, Module.symvers and BTF vmlinux) and
the compiler it was built with, so the module loads into the stock kernel (unsigned: it
taints, as docs/facts.md says). Whether a module has the fix is read from the binary: with
it, vfio-pci-core.ko calls irq_modify_status (irq_set_status_flags is an inline wrapper).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

from rig.core import timeouts
from rig.core.cache import Cache, content_key, tree_hash
from rig.core.errors import InfraError, UserError
from rig.core.progress import Progress
from rig.core.targets import TargetProfile
from rig.debian.apt import extract
from rig.debian.packages import Resolver
from rig.debian.rootfs import relativize_absolute_symlinks
from rig.host.profiles import HostProfile, host_profile
from rig.kernel.fix_state import module_has_fix

from .recipe import kbuild_host_packages, kbuild_target_packages

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


def compiler(profile: TargetProfile, host: HostProfile) -> str:
    """The compiler the kernel was built with (Debian's gcc-12 for the target), native or
    cross as the host profile says; Debian names both <triplet>-gcc-12."""
    cc = f"{profile.triplet}-gcc-12"
    if not shutil.which(cc):
        raise UserError(f"the compiler {cc} is missing (needed to rebuild vfio-pci-core.ko): "
                        f"apt-get install {host.gcc_package(profile.triplet)}, or run `rig setup` as root")
    return cc


class UnfixedVfio:
    """Builds (once, cached) the two vfio modules without the fix for one kernel."""

    def __init__(self, cache: Cache, resolver: Resolver, progress: Progress, host: HostProfile | None = None):
        self.cache, self.resolver, self.progress = cache, resolver, progress
        self.host = host or host_profile()

    def modules(self, profile: TargetProfile, kernel_release: str) -> dict[str, Path]:
        target = kbuild_target_packages(profile, kernel_release)
        host = kbuild_host_packages(profile, kernel_release, self.host)
        tlock, hlock = self.resolver.lock(target), self.resolver.lock(host)
        key = content_key("vfio-unfixed", profile.name, tlock.key(), hlock.key(),
                          tree_hash([Path(__file__)]))
        entry = self.cache.build("vfio-unfixed", key, lambda tmp: self._build(
            tmp, profile, kernel_release, (target, tlock), (host, hlock)))
        return {m: entry / m for m in MODULES}

    def _build(self, out: Path, profile: TargetProfile, kver: str, target, host) -> dict:
        self.progress.step(f"rebuilding vfio-pci-core.ko for {kver} without the INTx fix")
        debs = {**self.resolver.fetch(*target), **self.resolver.fetch(*host)}
        work = out / "work"
        source_deb = next(p for n, p in debs.items() if n.startswith("linux-source-"))
        extract([p for n, p in debs.items() if not n.startswith("linux-source-")], work / "root")
        relativize_absolute_symlinks(work / "root")
        headers = work / "root/usr/src" / f"linux-headers-{kver}"
        # Debian's Makefile includes the -common one by its absolute /usr/src path.
        common = next((work / "root/usr/src").glob("linux-headers-*-common"))
        (headers / "Makefile").write_text(f"include {common}/Makefile\n")
        cc = compiler(profile, self.host)
        self.progress.note("unpacking drivers/vfio/pci from linux-source (streamed)")
        src = extract_source_dir(source_deb, VFIO_PCI_DIR, work / "src")
        intrs = src / "vfio_pci_intrs.c"
        intrs.write_text(remove_fix(intrs.read_text()))
        (src / "Makefile").write_text(KBUILD)
        self._make(headers, src, profile)
        for m in MODULES:
            shutil.copy2(src / m, out / m)
        fixed = module_has_fix((out / "vfio-pci-core.ko").read_bytes())
        if fixed:
            raise UserError("the rebuilt vfio-pci-core.ko still calls irq_modify_status")
        shutil.rmtree(work)
        return {"kernel_release": kver, "compiler": cc, "vfio_intx_fix": fixed,
                "source": source_deb.name, "patch": "removed IRQ_DISABLE_UNLAZY set/clear"}

    def _make(self, headers: Path, src: Path, profile: TargetProfile) -> None:
        cmd = ["make", "-C", str(headers), f"M={src}", "modules", f"-j{os.cpu_count() or 1}"]
        if not self.host.native(profile.triplet):
            # Debian's headers name a cross compiler only when the kernel was built cross.
            cmd.append(f"CROSS_COMPILE={profile.triplet}-")
        r = subprocess.run(cmd, capture_output=True, text=True,
                           env={**os.environ, "LC_ALL": "C", "DEBIAN_KERNEL_USE_CCACHE": ""},
                           timeout=timeouts.BUILD_S)
        if r.returncode != 0:
            tail = (r.stderr or r.stdout).strip().splitlines()[-5:]
            raise InfraError(f"building vfio-pci-core.ko failed: {' | '.join(tail)}")


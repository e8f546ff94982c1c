"""The rig's L1 helper modules: for a machine whose L0 leaves part of a nested KVM guest's
state out of its migration stream, a small module that puts it back in L1 after a restore
(pseries: guest_images/l1_helper/rig_nested_ptcr.c). Built once per Debian kernel against
its headers (guest_images.kbuild), cached, and copied into L1 only when a chain snapshot is
restored: a run that boots its guests never loads it. A kernel the rig has no headers for
(the user's) gets no helper, and its chain is not saved with L2 in it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from rig.core import timeouts
from rig.core.cache import Cache, content_key, tree_hash
from rig.core.errors import InfraError
from rig.core.progress import Progress
from rig.core.targets import TargetProfile
from rig.debian.packages import Resolver
from rig.host.profiles import HostProfile, host_profile

from .kbuild import KernelHeaders

SOURCES = Path(__file__).with_name("l1_helper")


class L1Helper:
    """Builds (once, cached) the named helper module for one Debian kernel."""

    def __init__(self, cache: Cache, resolver: Resolver, progress: Progress, host: HostProfile | None = None):
        self.cache, self.resolver, self.progress = cache, resolver, progress
        self.host = host or host_profile()

    def module(self, name: str, profile: TargetProfile, kernel_release: str) -> Path:
        source = SOURCES / f"{name}.c"
        if not source.is_file():
            raise InfraError(f"no L1 helper module named {name} in {SOURCES}")
        kbuild = KernelHeaders(self.resolver, self.host, profile, kernel_release)
        key = content_key("l1-helper", name, profile.name, *kbuild.keys(),
                          tree_hash([source, Path(__file__), Path(__file__).with_name("kbuild.py")]))
        entry = self.cache.build("l1-helper", key, lambda tmp: self._build(tmp, name, source, kbuild))
        return entry / f"{name}.ko"

    def _build(self, out: Path, name: str, source: Path, kbuild: KernelHeaders) -> dict:
        self.progress.step(f"building the L1 helper module {name}.ko for {kbuild.release}")
        work = out / "work"
        headers, _ = kbuild.unpack(work)
        src = work / "src"
        src.mkdir()
        shutil.copy2(source, src / source.name)
        (src / "Makefile").write_text(f"obj-m += {name}.o\n")
        kbuild.make(headers, src, f"{name}.ko")
        # Copied into L1 over SSH at each restore: without its debug sections it is ~30x smaller.
        subprocess.run([f"{kbuild.profile.triplet}-strip", "--strip-debug", "-o", str(out / f"{name}.ko"),
                        str(src / f"{name}.ko")], check=True, timeout=timeouts.BUILD_S)
        shutil.rmtree(work)
        return {"kernel_release": kbuild.release, "module": name, "bytes": (out / f"{name}.ko").stat().st_size}

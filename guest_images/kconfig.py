"""The kernel config fragments shipped for building an L1 kernel that boots in the rig
(guest_images/config/<arch>.config), and the check that they really give such a config:
defconfig of the arch, the fragment merged, `make olddefconfig`, every option as asked.
"""

from __future__ import annotations

import re
import subprocess
import tarfile
from pathlib import Path

from rig.core import timeouts
from rig.core.errors import InfraError
from rig.core.targets import TargetProfile
from rig.kernel.under_test import parse_config

HERE = Path(__file__).parent
# What kconfig reads: every Kconfig and Makefile, scripts/, and the arch's defconfigs.
KCONFIG_FILES = re.compile(r"^[^/]+/(.*/)?(Kconfig[^/]*|Makefile[^/]*|Kbuild[^/]*)$|"
                           r"^[^/]+/scripts/|^[^/]+/arch/[^/]+/(configs|tools)/")


def fragment_path(profile: TargetProfile) -> Path:
    return HERE / "config" / f"{profile.name}.config"


def fragment(profile: TargetProfile) -> dict[str, str]:
    return parse_config(fragment_path(profile).read_text())


def extract_kconfig_tree(source_tarball_stream, dest: Path) -> Path:
    """Only what kconfig needs out of linux-source-X.tar.xz (45 MB instead of 1.5 GB)."""
    top: str | None = None
    with tarfile.open(fileobj=source_tarball_stream, mode="r|xz") as t:
        for m in t:
            if KCONFIG_FILES.search(m.name) and (m.isfile() or m.isdir() or m.issym()):
                t.extract(m, dest, filter="data")
                top = m.name.split("/")[0]
    if top is None:
        raise InfraError("no kconfig files in the kernel source tarball")
    return dest / top


def merged_config(tree: Path, profile: TargetProfile, out: Path) -> dict[str, str]:
    """defconfig + fragment + olddefconfig, in out/ (O=), with the rig's compilers."""
    out.mkdir(parents=True, exist_ok=True)
    make = ["make", "-C", str(tree), f"O={out}", f"ARCH={profile.kbuild_arch}",
            f"CROSS_COMPILE={profile.cross_compile}", f"CC={profile.cross_compile}gcc-12", "HOSTCC=gcc-12"]
    steps = [make + [profile.defconfig],
             [str(tree / "scripts/kconfig/merge_config.sh"), "-m", "-O", str(out), str(out / ".config"),
              str(fragment_path(profile))],
             make + ["olddefconfig"]]
    for cmd in steps:
        r = subprocess.run(cmd, cwd=tree, capture_output=True, text=True, timeout=timeouts.BUILD_S)
        if r.returncode != 0:
            raise InfraError(f"{' '.join(cmd[:1] + cmd[-1:])} failed: {(r.stderr or r.stdout)[-400:]}")
    return parse_config((out / ".config").read_text())


def unmet(wanted: dict[str, str], config: dict[str, str]) -> list[str]:
    """Options of the fragment that the resulting config does not have as asked."""
    return [f"{k}={v} (got {config.get(k, 'not set')})" for k, v in wanted.items() if config.get(k) != v]

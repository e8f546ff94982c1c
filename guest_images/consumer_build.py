"""Builds the userspace VFIO consumer (consumer/: the flow and the scenarios) for a guest arch:
static, with the same gcc-12 toolchains that rebuild the vfio module, cached."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from rig.core import timeouts
from rig.core.cache import Cache, content_key, tree_hash
from rig.core.errors import InfraError, UserError
from rig.core.targets import TargetProfile

SOURCE_DIR = Path(__file__).parent / "consumer"
SOURCES = sorted(SOURCE_DIR.glob("*.c"))
HEADERS = sorted(SOURCE_DIR.glob("*.h"))
INSTALLED_AS = "/usr/bin/rig-vfio-intx-consumer"


def compiler_for(profile: TargetProfile) -> str:
    cc = f"{profile.cross_compile}gcc-12"
    if not shutil.which(cc):
        raise UserError(f"the compiler {cc} is missing (it builds the userspace VFIO consumer): "
                        "run `make host` or `rig setup --host-only` as root")
    return cc


def build_consumer(cache: Cache, profile: TargetProfile) -> Path:
    cc = compiler_for(profile)
    version = subprocess.run([cc, "--version"], capture_output=True, text=True,
                             timeout=timeouts.QEMU_QUERY_S).stdout.splitlines()[0]
    key = content_key("consumer", profile.name, tree_hash([*SOURCES, *HEADERS]), version)

    def build(out: Path) -> dict:
        r = subprocess.run([cc, "-static", "-O2", "-Wall", "-o", str(out / "consumer"), *map(str, SOURCES)],
                           capture_output=True, text=True, timeout=timeouts.BUILD_S)
        if r.returncode != 0:
            hint = (" (is the target's libc6-dev installed? `make host`)"
                    if "No such file" in r.stderr else "")
            raise InfraError(f"building the VFIO consumer with {cc} failed{hint}: {r.stderr[-400:]}")
        return {"compiler": version}
    return cache.build("consumer", key, build) / "consumer"

"""The configurations the rig builds an L1 kernel with, made from the fragments in config/.

Three bases, each topped with what the chain needs (config/<arch>.config) and what the
interrupt-path trace reads (config/trace.config), as one KCONFIG_ALLCONFIG file:
  minimal    `allnoconfig` plus config/minimal-base.config and minimal-<arch>.config: the
             smallest kernel that boots as L1 (the way virtme-configkernel makes small
             kernels), everything built in, no modules;
  defconfig  the arch's defconfig (x86_64_defconfig, ppc64le_defconfig), then `alldefconfig`;
  FILE       the user's own .config, then `alldefconfig`.
In a KCONFIG_ALLCONFIG file a later line wins over an earlier one, so the fragments override
the base. Also here: the check that the shipped fragments give such a config on Debian's
linux-source tree (tests/test_kconfig.py).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from rig.core import timeouts
from rig.core.errors import InfraError, UserError
from rig.core.targets import TargetProfile
from rig.kernel.under_test import parse_config

CONFIG_DIR = Path(__file__).parent / "config"
MINIMAL, DEFCONFIG = "minimal", "defconfig"
# What kconfig reads: every Kconfig and Makefile, scripts/, and the arch's defconfigs.
KCONFIG_FILES = re.compile(r"^[^/]+/(.*/)?(Kconfig[^/]*|Makefile[^/]*|Kbuild[^/]*)$|"
                           r"^[^/]+/scripts/|^[^/]+/arch/[^/]+/(configs|tools)/")


def fragment_path(profile: TargetProfile) -> Path:
    return CONFIG_DIR / f"{profile.name}.config"


def fragment(profile: TargetProfile) -> dict[str, str]:
    return parse_config(fragment_path(profile).read_text())


def chain_fragments(profile: TargetProfile) -> list[Path]:
    """What every configuration gets on top of its base: the chain's needs, the trace's."""
    return [fragment_path(profile), CONFIG_DIR / "trace.config"]


def minimal_fragments(profile: TargetProfile) -> list[Path]:
    return [CONFIG_DIR / "minimal-base.config", CONFIG_DIR / f"minimal-{profile.name}.config"]


# --coverage profiles vfio-pci's interrupt code only: kbuild reads GCOV_PROFILE_<object>
# (scripts/Makefile.lib), and make passes a command-line variable to every directory's make,
# so the tree's Makefiles stay as they are and only these objects are compiled again.
COVERED = ("drivers/vfio/pci/vfio_pci_intrs.c",)
GCOV_FRAGMENT = CONFIG_DIR / "gcov.config"


def make_command(tree: Path, build_dir: Path, profile: TargetProfile, cc_prefix: str = "",
                 coverage: bool = False) -> list[str]:
    """make for this arch, out of tree, with the compilers the rig installs (gcc-12, the
    one Debian's kernels are built with; cross for a foreign arch). cc_prefix ("ccache "):
    configure and build must name the same CC, or kbuild reconfigures and recompiles all."""
    profiled = [f"GCOV_PROFILE_{Path(c).stem}.o=y" for c in COVERED] if coverage else []
    return ["make", "-C", str(tree), f"O={build_dir}", f"ARCH={profile.kbuild_arch}",
            f"CROSS_COMPILE={profile.cross_compile}", f"CC={cc_prefix}{profile.cross_compile}gcc-12",
            f"HOSTCC={cc_prefix}gcc-12", *profiled]


@dataclass(frozen=True)
class ConfigPlan:
    """How one build directory gets its .config: the base, the file kconfig reads, and a
    digest of all of it, so an unchanged plan is not configured again."""

    base: str                     # minimal, defconfig, or a .config file's path
    pre_targets: tuple[str, ...]  # make targets before (the defconfig)
    target: str                   # allnoconfig or alldefconfig
    base_text: str                # the base's lines (empty for defconfig: read after pre_targets)
    overlay_text: str             # the fragments on top

    @property
    def digest(self) -> str:
        h = hashlib.sha256()
        for part in (self.base, *self.pre_targets, self.target, self.base_text, self.overlay_text):
            h.update(part.encode() + b"\0")
        return h.hexdigest()


def plan(config: str, profile: TargetProfile, coverage: bool = False) -> ConfigPlan:
    overlay = "".join(p.read_text() for p in chain_fragments(profile) + ([GCOV_FRAGMENT] if coverage else []))
    if config == MINIMAL:
        base = "".join(p.read_text() for p in minimal_fragments(profile))
        return ConfigPlan(MINIMAL, (), "allnoconfig", base, overlay)
    if config == DEFCONFIG:
        return ConfigPlan(DEFCONFIG, (profile.defconfig,), "alldefconfig", "", overlay)
    path = Path(config)
    try:
        text = path.read_text()
    except OSError as e:
        raise UserError(f"--config {config}: cannot read it ({e.strerror}); give minimal, defconfig "
                        "or a .config file") from e
    return ConfigPlan(str(path.resolve()), (), "alldefconfig", text, overlay)


def configure(tree: Path, build_dir: Path, profile: TargetProfile, p: ConfigPlan,
              cc_prefix: str = "", env: dict[str, str] | None = None, coverage: bool = False) -> dict[str, str]:
    """Write build_dir/.config from the plan; return it parsed."""
    make = make_command(tree, build_dir, profile, cc_prefix, coverage)
    for target in p.pre_targets:
        _run(make + [target], tree, env)
    base = (build_dir / ".config").read_text() if p.pre_targets else p.base_text
    allconfig = build_dir / "rig-allconfig"
    allconfig.write_text(base + "\n" + p.overlay_text)
    _run(make + [f"KCONFIG_ALLCONFIG={allconfig}", p.target], tree, env)
    return parse_config((build_dir / ".config").read_text())


def _run(cmd: list[str], tree: Path, env: dict[str, str] | None = None) -> None:
    r = subprocess.run(cmd, cwd=tree, capture_output=True, text=True, timeout=timeouts.BUILD_S,
                       env={**os.environ, **env} if env else None)
    if r.returncode != 0:
        raise InfraError(f"`{' '.join(cmd[-1:])}` in {tree} failed (exit {r.returncode}): "
                         f"{(r.stderr or r.stdout).strip()[-400:]}")


def merged_config(tree: Path, profile: TargetProfile, out: Path) -> dict[str, str]:
    """defconfig + the chain's fragment, as docs/usage.md's recipe makes it (in out/, O=)."""
    out.mkdir(parents=True, exist_ok=True)
    p = ConfigPlan(DEFCONFIG, (profile.defconfig,), "alldefconfig", "", fragment_path(profile).read_text())
    return configure(tree, out, profile, p)


def unmet(wanted: dict[str, str], config: dict[str, str]) -> list[str]:
    """Options asked for that the resulting config does not have as asked."""
    return [f"{k}={v} (got {config.get(k, 'not set')})" for k, v in wanted.items() if config.get(k) != v]


def wanted(p: ConfigPlan) -> dict[str, str]:
    """Every option the plan's fragments set to y (an `is not set` line sets nothing)."""
    asked = parse_config(p.base_text) if p.base == MINIMAL else {}
    asked.update(parse_config(p.overlay_text))
    return {k: v for k, v in asked.items() if v == "y"}


def extract_kconfig_tree(source_tarball_stream: IO[bytes], dest: Path) -> Path:
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

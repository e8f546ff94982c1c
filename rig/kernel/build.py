"""An L1 kernel built from the user's source tree: `rig kernel build`, and `--kernel-tree`
of `rig run` and `rig matrix`.

Out of tree (O=), in one build directory per tree and arch that is kept and reused: kbuild
recompiles only what changed since the last build, which is what makes a bisect step or a
one-file change cheap. The configuration (rig.kernel.kconfig) is made again only when what
it is made from changed (its digest is kept beside it, in rig-config.json). make's output
goes to build.log in the build directory; the terminal gets a line now and then.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from rig.core import timeouts
from rig.core.errors import InfraError, UserError
from rig.core.progress import Progress
from rig.core.spec import KernelBuildSpec
from rig.core.targets import TargetProfile, kernel_options
from rig.host.children import die_with_parent
from rig.host.needs import missing_for_kernel_build
from rig.kernel import kconfig
from rig.kernel.ccache import CacheCounts, CompilerCache, Misses
from rig.kernel.fix_state import module_has_fix, vmlinux_has_fix
from rig.kernel.under_test import parse_config

log = logging.getLogger(__name__)

CONFIG_RECORD = "rig-config.json"
BUILD_LOG = "build.log"
MODULES_DIR = "rig-modules"        # INSTALL_MOD_PATH, when the kernel has modules
IN_TREE_PREFIX = ".intx-rig-"        # + arch: the default build directory, right in the tree
COVERAGE_SUFFIX = "-gcov"            # a --coverage build's own directory: its config differs
# The kbuild lines that mean a file was compiled or linked (counted for the progress line).
WORK_TAGS = ("CC", "AS", "LD", "AR", "HOSTCC", "HOSTLD")


class KernelBuildError(InfraError):
    """The user's tree did not configure or build: no kernel to judge. Exit status 125, so
    `git bisect run` skips the commit rather than calling it good or bad."""


@dataclass(frozen=True)
class BuiltKernel:
    arch: str
    tree: Path
    build_dir: Path
    kernel: Path                  # what L0 boots: bzImage, or vmlinux on ppc64
    vmlinux: Path
    modules: Path | None          # an INSTALL_MOD_PATH root, or None (everything built in)
    release: str
    config: str                   # minimal, defconfig, or the .config file's path
    vfio_intx_fix: bool | None    # read from the binary (None: vfio-pci not in it)
    seconds: float
    configured: bool              # the configuration was made this time
    compiled: int                 # files compiled or linked this time
    ccache: CacheCounts           # of those compilations, how many ccache served
    misses: Misses = Misses((), ())   # where the others were, and what ccache could not cache

    def summary(self) -> list[str]:
        fix = {True: "has the INTx fix (IRQ_DISABLE_UNLAZY)", False: "LACKS the INTx fix",
               None: "vfio-pci not found in it"}[self.vfio_intx_fix]
        return [f"kernel   {self.kernel}",
                f"modules  {self.modules or 'none (everything built in)'}",
                f"release  {self.release}",
                f"config   {self.config} ({self.build_dir / '.config'})",
                f"vfio     {fix}",
                f"built in {self.seconds:.0f} s ({self.compiled} files compiled or linked"
                f"{', configured' if self.configured else ''})",
                f"ccache   {self.ccache.describe()}",
                *([f"         {why}"] if (why := self.misses.explain(self.ccache)) else [])]


def default_build_dir(cache_root: Path, tree: Path, profile: TargetProfile, coverage: bool = False) -> Path:
    """One per tree and arch, reused by the tree's next build: a hidden directory right in
    the tree where it is writable (Linux's .gitignore ignores it; from there kbuild names
    the sources `../...`, so another tree with the same files, wherever it is, compiles the
    same command lines and ccache serves it), else in the cache, by the tree's real path."""
    suffix = COVERAGE_SUFFIX if coverage else ""
    if os.access(tree, os.W_OK):
        return tree.resolve() / f"{IN_TREE_PREFIX}{profile.name}{suffix}"
    key = hashlib.sha256(str(tree.resolve()).encode()).hexdigest()[:12]
    return cache_root / "kernel-builds" / f"{tree.resolve().name}-{key}-{profile.name}{suffix}"


def build(spec: KernelBuildSpec, profile: TargetProfile, cache_root: Path, progress: Progress,
          build_dir: Path | None = None) -> BuiltKernel:
    """Build (or bring up to date) spec's tree for profile; its kernel, checked by the caller."""
    where = build_dir or spec.build_dir or default_build_dir(cache_root, spec.tree, profile, spec.coverage)
    return KernelBuild(spec, profile, where, progress, CompilerCache(cache_root)).run()


class KernelBuild:
    """One arch's build of one tree in one build directory, locked while it runs."""

    def __init__(self, spec: KernelBuildSpec, profile: TargetProfile, build_dir: Path, progress: Progress,
                 ccache: CompilerCache):
        self.spec = spec
        self.profile = profile
        self.tree = spec.tree.resolve()
        self.build_dir = build_dir.resolve()
        self.progress = progress
        self.plan = kconfig.plan(spec.config, profile, spec.coverage)
        self.jobs = spec.jobs or os.cpu_count() or 1
        self.ccache = ccache
        self.env = ccache.environment(self.tree, self.build_dir)
        self.cc_prefix = ccache.cc_prefix

    def run(self) -> BuiltKernel:
        need = missing_for_kernel_build(self.profile)
        if need:
            names = " ".join(sorted({n.package for n in need}))
            raise UserError(f"building a {self.profile.name} kernel needs host packages {names}: "
                            f"`make host` as root installs them (or: sudo apt-get install {names})")
        self.build_dir.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        with self._locked():
            self.ccache.start_counting(self.build_dir)
            configured = self._configure()
            config = parse_config((self.build_dir / ".config").read_text())
            modular = config.get("CONFIG_MODULES") == "y"
            targets = [self.profile.kbuild_target] + (["modules"] if modular else [])
            compiled = self._make(targets, "building")
            modules = self._install_modules() if modular else None
            return BuiltKernel(self.profile.name, self.tree, self.build_dir,
                               self.build_dir / self.profile.kbuild_image, self.build_dir / "vmlinux",
                               modules, self._release(), self.plan.base, self._fix_state(config),
                               time.monotonic() - t0, configured, compiled, *self.ccache.counted(self.build_dir))

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Two rigs building in one directory would corrupt it: the second waits."""
        with open(self.build_dir / ".rig-lock", "w") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self.progress.note(f"waiting for another build in {self.build_dir}")
                fcntl.flock(f, fcntl.LOCK_EX)
            yield

    def _configure(self) -> bool:
        record = self.build_dir / CONFIG_RECORD
        if (self.build_dir / ".config").is_file() and record.is_file() and \
                json.loads(record.read_text()).get("digest") == self.plan.digest:
            log.info("configuration unchanged (%s): kept", self.plan.digest[:12])
            return False
        self.progress.step(f"configuring {self.tree} for {self.profile.name} ({self.plan.base}) "
                           f"in {self.build_dir}")
        record.unlink(missing_ok=True)
        try:
            config = kconfig.configure(self.tree, self.build_dir, self.profile, self.plan, self.cc_prefix, self.env,
                                       self.spec.coverage)
        except InfraError as e:
            raise KernelBuildError(f"configuring the kernel failed: {e}") from e
        self._check(config)
        record.write_text(json.dumps({"config": self.plan.base, "digest": self.plan.digest}) + "\n")
        return True

    def _check(self, config: dict[str, str]) -> None:
        """What the chain needs must be there; other fragment options may be missing from an
        older tree (logged)."""
        lacking = [o for o in kernel_options(self.profile) if config.get(o) not in ("y", "m")]
        if lacking:
            raise KernelBuildError(f"the configured kernel lacks {', '.join(lacking)}, which the chain "
                                   f"needs (their dependencies are off in this tree or --config); "
                                   f"see {self.build_dir / '.config'}")
        for line in kconfig.unmet(kconfig.wanted(self.plan), config):
            log.info("configuration: asked for %s", line)

    def _make(self, targets: list[str], what: str) -> int:
        """make targets, its output in build.log; returns how many files it compiled."""
        cmd = kconfig.make_command(self.tree, self.build_dir, self.profile, self.cc_prefix, self.spec.coverage) + \
            [f"-j{self.jobs}", *targets]
        self.progress.step(f"{what} {' '.join(targets)} ({self.profile.name}, -j{self.jobs}); "
                           f"log: {self.build_dir / BUILD_LOG}")
        log.info("running %s", " ".join(cmd))
        with open(self.build_dir / BUILD_LOG, "a") as out:
            out.write(f"\n### {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n")
            out.flush()
            rc, compiled, tail = self._stream(cmd, out)
        if rc != 0:
            errors = [line for line in tail if "error" in line.lower()] or tail
            raise KernelBuildError(f"the kernel did not build (make exited {rc}): "
                                   f"{' | '.join(errors[-3:])[-500:]}; full log: {self.build_dir / BUILD_LOG}")
        return compiled

    def _stream(self, cmd: list[str], out: TextIO) -> tuple[int, int, list[str]]:
        proc = subprocess.Popen(cmd, cwd=self.tree, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, errors="replace", start_new_session=True,
                                env={**os.environ, **self.env},
                                preexec_fn=die_with_parent())
        killer = _Killer(proc, timeouts.KERNEL_BUILD_S)
        compiled, tail, last_note = 0, list[str](), time.monotonic()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                out.write(line)
                tail = (tail + [line.rstrip()])[-40:]
                if line.split()[:1] and line.split()[0] in WORK_TAGS:
                    compiled += 1
                    if time.monotonic() - last_note >= timeouts.KERNEL_BUILD_PROGRESS_EVERY_S:
                        last_note = time.monotonic()
                        self.progress.note(f"{compiled} files compiled or linked ({line.split()[-1]})")
            rc = proc.wait(timeout=timeouts.KERNEL_BUILD_S)   # output ended: make exited or was ended
        finally:
            killer.cancel()
            if proc.poll() is None:        # interrupted, or timed out: make and its compilers go
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if killer.fired:
            raise KernelBuildError(f"make did not finish in {timeouts.KERNEL_BUILD_S:.0f} s; "
                                   f"log: {self.build_dir / BUILD_LOG}")
        return rc, compiled, tail

    def _install_modules(self) -> Path:
        dest = self.build_dir / MODULES_DIR
        shutil.rmtree(dest, ignore_errors=True)       # an older release's modules must not stay
        self._make([f"INSTALL_MOD_PATH={dest}", "INSTALL_MOD_STRIP=1", "modules_install"], "installing")
        return dest

    def _release(self) -> str:
        return (self.build_dir / "include/config/kernel.release").read_text().strip()

    def _fix_state(self, config: dict[str, str]) -> bool | None:
        """From the binary: vfio-pci-core.ko when a module, vmlinux when built in."""
        module = self.build_dir / "drivers/vfio/pci/vfio-pci-core.ko"
        if config.get("CONFIG_VFIO_PCI_CORE") == "m" and module.is_file():
            return module_has_fix(module.read_bytes())
        return vmlinux_has_fix(self.build_dir / "vmlinux")


class _Killer:
    """Kills make's process group once its time is up (a read of its output never ends
    while make is alive, so the deadline cannot be checked between lines alone)."""

    def __init__(self, proc: subprocess.Popen[str], seconds: float):
        self.fired = False
        self._proc = proc
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        self.fired = True
        try:
            os.killpg(self._proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def cancel(self) -> None:
        self._timer.cancel()

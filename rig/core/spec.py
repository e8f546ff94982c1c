"""What a run is, as one typed object, validated once before anything starts.

The CLI (`rig run`, `rig boot`, `rig matrix`), the pytest plugin and the matrix's cells
all build a RunSpec (or a MatrixSpec) and nothing else carries the options. `validate`
checks every value here, with the standard library only: numbers (zero, negative,
non-finite, absurd), choices, contradictory combinations, and what a path must be
(a file, a directory, writable). What needs the host (whether a given QEMU binary runs,
the architecture of a given kernel) is checked right after, by rig.commands.preflight,
still before anything is downloaded, built or booted. A bad value is a UserError naming
the option, the value and what is allowed.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from rig.core import timeouts
from rig.core.errors import SpecError
from rig.core.kinds import AccelChoice, Consumer, DeviceKind, InterruptController, L1Vfio, Outcome, Scenario, spellings
from rig.core.targets import PROFILES, MachineProfile, TargetProfile, machine, machines_of, profile

DEVICES = spellings(DeviceKind)
CONSUMERS = spellings(Consumer)
L1_VFIO = spellings(L1Vfio)
ACCELS = spellings(AccelChoice)
SCENARIOS = spellings(Scenario)
KERNEL_CONFIGS = ("minimal", "defconfig")    # or a .config file
DEFAULT_KERNEL_CONFIG = KERNEL_CONFIGS[0]

# Bounds a person could mean. Past them a value is a typo (a duration in ms, a count with
# an extra zero), and would keep a CI machine busy for days.
MAX_SECONDS = 24 * 3600.0
MAX_INTERRUPTS = 1_000_000
MAX_L1_SMP = 16
MAX_REPEAT = 100
MAX_JOBS = 64
# A stall window shorter than two samples cannot see a count move: any pending byte would
# look stalled (with a window of 0 a healthy x86 run was reported as STALL).
MIN_STALL_WINDOW_S = 2 * timeouts.SAMPLE_EVERY_S
# Fewer serviced interrupts than this by the end is "too slow to judge" (ERROR): a
# --pass-after below it could never PASS.
MIN_SERVICED = 10
# Where the matrix and a bisect step end a PASS: of the 1,603 runs the soaks recorded since the
# consumer fix, all 286 STALLs stopped with at most 1 interrupt serviced and all 1,316 PASSes
# went past 30 without a stall, so each would have had its verdict at 30; a run driven by
# hand drives its --duration (docs/measurements.md, "The drive").
PASS_AFTER = 30
MIN_BOOT_TIMEOUT_S = 1.0    # a test makes a boot time out on purpose with 1 s


MIN_HOLD_MINUTES = 0.05                     # 3 s: a test's hold that runs out
MAX_HOLD_MINUTES = 24 * 60.0


def scenario_problem(scenario: str, device: str, mach: MachineProfile) -> str | None:
    """Why this device on this machine cannot carry the scenario, or None."""
    if scenario != Scenario.EXCLUSIVE:
        return None
    if device in (DeviceKind.LEGACY, DeviceKind.LEGACY_2_3):
        return ("the exclusive scenario puts a twin of the device on its INTx line, and the legacy device is one "
                "vfio-user process with no twin; use --device pci-serial or pci-serial-2.3")
    if not mach.shared_line:
        return f"{mach.name} has no two slots on one INTx line for the exclusive scenario's twin"
    return None


def _number(option: str, value: float | int, low: float, high: float, integer: bool = False,
            unit: str = "seconds") -> None:
    what = "a whole number" if integer else f"a number of {unit}"
    if isinstance(value, float) and not math.isfinite(value):
        raise SpecError(option, f"{option} {value}: must be {what} from {low:g} to {high:g}")
    if integer and int(value) != value:
        raise SpecError(option, f"{option} {value}: must be {what} from {low:g} to {high:g}")
    if not low <= value <= high:
        shown = str(value) if integer else f"{value:g}"
        raise SpecError(option, f"{option} {shown}: must be {what} from {low:g} to {high:g}")


def _choice(option: str, value: str | None, allowed: tuple[str, ...]) -> None:
    if value is not None and value not in allowed:
        raise SpecError(option, f"{option} {value}: use one of {', '.join(allowed)}")


def existing_file(option: str, path: Path | None, executable: bool = False) -> None:
    if path is None:
        return
    if not path.exists():
        raise SpecError(option, f"{option} {path}: no such file")
    if not path.is_file():
        raise SpecError(option, f"{option} {path}: not a file")
    if executable and not os.access(path, os.X_OK):
        raise SpecError(option, f"{option} {path}: not an executable file")
    if not os.access(path, os.R_OK):
        raise SpecError(option, f"{option} {path}: not readable")


def existing_dir(option: str, path: Path | None) -> None:
    if path is None:
        return
    if not path.exists():
        raise SpecError(option, f"{option} {path}: no such directory")
    if not path.is_dir():
        raise SpecError(option, f"{option} {path}: not a directory")


def writable_dir(option: str, path: Path) -> None:
    """path is, or can be made, a directory the rig can write into. Nothing is created:
    a probe directory is made in the nearest existing ancestor and removed at once."""
    if path.exists() and not path.is_dir():
        raise SpecError(option, f"{option} {path}: exists and is not a directory")
    ancestor = path
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise SpecError(option, f"{option} {path}: {ancestor} is a file, not a directory")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".rig-probe-", dir=ancestor))
    except OSError as e:
        raise SpecError(option, f"{option} {path}: cannot create files in {ancestor} ({e.strerror}); "
                        "give a writable directory") from e


@dataclass(frozen=True)
class KernelBuildSpec:
    """A kernel to build from the user's source tree (rig.kernel.build): out of tree, in a
    build directory per arch (None: one in the cache, named after the tree), from the
    rig's minimal configuration, the arch's defconfig, or the user's .config."""

    tree: Path
    build_dir: Path | None = None
    config: str = DEFAULT_KERNEL_CONFIG
    jobs: int | None = None             # None: one per core
    coverage: bool = False              # gcov on vfio-pci's interrupt code (its own build directory)

    def validate(self) -> KernelBuildSpec:
        existing_dir("--kernel-tree", self.tree)
        if not (self.tree / "Kconfig").is_file() or not (self.tree / "Makefile").is_file():
            raise SpecError("--kernel-tree", f"--kernel-tree {self.tree}: no Kconfig and Makefile at its top; give the "
                            "top directory of a Linux source tree")
        if (self.tree / ".config").exists() or (self.tree / "include/config").is_dir():
            # kbuild refuses an out-of-tree build of a tree configured in place.
            raise SpecError("--kernel-tree", f"--kernel-tree {self.tree}: it has been configured or built in "
                            f"place; the rig builds out of tree (O=): run `make mrproper` in it (your "
                            f".config can be given with --config FILE once moved out)")
        if self.config not in KERNEL_CONFIGS:
            existing_file("--config", Path(self.config))
        if self.jobs is not None:
            _number("--jobs", self.jobs, 1, MAX_JOBS, integer=True)
        if self.build_dir is not None:
            writable_dir("--build-dir", self.build_dir)
            if self.build_dir.resolve().is_relative_to(self.tree.resolve()) and \
                    not self.build_dir.resolve().name.startswith("."):
                raise SpecError("--build-dir", f"--build-dir {self.build_dir}: inside the source tree; give a "
                                "directory outside it (or a hidden one, which git ignores)")
        return self


@dataclass(frozen=True)
class KernelUnderTestSpec:
    """The user's L1 kernel: a kernel file (and its modules), a .deb, or a source tree to
    build. None of them: Debian's."""

    kernel: Path | None = None
    modules: Path | None = None
    deb: Path | None = None
    build: KernelBuildSpec | None = None

    @property
    def given(self) -> bool:
        return bool(self.kernel or self.deb or self.build)

    def validate(self) -> None:
        if sum(x is not None for x in (self.kernel, self.deb, self.build)) > 1:
            raise SpecError("--kernel", "--kernel, --kernel-deb and --kernel-tree: give one of them")
        if self.modules and not self.kernel:
            raise SpecError("--modules", f"--modules {self.modules}: goes with --kernel")
        existing_file("--kernel", self.kernel)
        existing_dir("--modules", self.modules)
        existing_file("--kernel-deb", self.deb)
        if self.deb and self.deb.suffix != ".deb":
            raise SpecError("--kernel-deb", f"--kernel-deb {self.deb}: not a .deb file (a linux-image-*.deb "
                            "is expected)")
        if self.build:
            self.build.validate()


@dataclass(frozen=True)
class DriveSpec:
    """How the rig drives the device and judges (rig.chain.drive, rig.chain.verdict): what
    the command line sets, and the pacing the rig keeps (tests shorten it)."""

    duration: float = timeouts.DURATION_S          # seconds of driving, at most
    # Pending and nothing moved for this long: STALL. None: by how L2 runs (settled()).
    stall_window: float | None = None
    pass_after: int = 0           # PASS once this many were serviced; 0: the whole duration
    gap: float = timeouts.PUSH_GAP_S               # between a serviced byte and the next push
    sample_every: float = timeouts.SAMPLE_EVERY_S  # /proc/interrupts samples
    min_serviced: int = MIN_SERVICED               # fewer by the end: too slow to judge (ERROR)

    def validate(self) -> None:
        _number("--duration", self.duration, 1, MAX_SECONDS)
        if self.stall_window is not None:
            _number("--stall-window", self.stall_window, MIN_STALL_WINDOW_S, 3600)
        _number("--pass-after", self.pass_after, 0, MAX_INTERRUPTS, integer=True)
        if 0 < self.pass_after < MIN_SERVICED:
            raise SpecError("--pass-after", f"--pass-after {self.pass_after}: use 0 (drive the whole --duration) or at "
                            f"least {MIN_SERVICED} (fewer serviced interrupts cannot be judged)")
        longest = timeouts.LONGEST_STALL_WINDOW_S if self.stall_window is None else self.stall_window
        if self.duration < longest:
            default = " (its default with L2 under TCG)" if self.stall_window is None else ""
            raise SpecError("--duration", f"--duration {self.duration:g} is shorter than --stall-window "
                            f"{longest:g}{default}: a stall could never be seen")

    def settled(self, l2_accel: str) -> DriveSpec:
        """This drive with its stall window: the one asked for, else the default for how
        L2 runs ("" without L2)."""
        if self.stall_window is not None:
            return self
        return replace(self, stall_window=timeouts.STALL_WINDOW_S.get(l2_accel, timeouts.LONGEST_STALL_WINDOW_S))

    @property
    def window(self) -> float:
        """The stall window of a settled drive (the drive and the verdict use only those)."""
        if self.stall_window is None:
            raise ValueError("the stall window was not settled: DriveSpec.settled() first")
        return self.stall_window


class OnAMachine:
    """A spec that names an arch and, optionally, one of its machines."""

    arch: str
    machine: str | None

    @property
    def profile(self) -> TargetProfile:
        return profile(self.arch)

    @property
    def machine_profile(self) -> MachineProfile:
        return machine(self.arch, self.machine)


@dataclass(frozen=True)
class RunSpec(OnAMachine):
    """One `rig run`: the chain to build and how to drive it."""

    arch: str
    machine: str | None = None             # None: the arch's default machine
    ic: InterruptController | None = None  # None: the machine's first controller
    device: DeviceKind | None = None       # None: the machine's first device where usable
    consumer: Consumer = Consumer.L2
    scenario: Scenario = Scenario.FLOW     # which INTx path the run drives
    l1_vfio: L1Vfio = L1Vfio.FIXED
    l2_accel: AccelChoice = AccelChoice.AUTO
    l1_smp: int = 1
    boot_timeout: float | None = None      # None: each guest's default (rig.core.timeouts)
    l2_hang_s: float = timeouts.L2_KVM_HANG_S
    snapshot: bool = True                  # restore a booted L1 from the cache (False: boot it)
    confirm: int = 1                       # run this many times; a verdict only if all agree
    hold: float | None = None              # minutes the chain stays up after the verdict (None: none)
    detach: bool = False                   # the held rig goes on in the background
    expect: Outcome | None = None          # the verdict the cell should give (rig matrix's runs)
    hold_unexpected: bool = False          # hold only when the verdict is not `expect`
    drive: DriveSpec = field(default_factory=DriveSpec)
    kernel: KernelUnderTestSpec = field(default_factory=KernelUnderTestSpec)
    qemu: Path | None = None
    out: Path | None = None                # None: results/<arch>-<ic>-<time>

    @property
    def interrupt_controller(self) -> str:
        return self.ic or self.machine_profile.interrupt_controllers[0]

    @property
    def name(self) -> str:
        """The run's name in junit.xml and the timeline's title, before the kernel is read."""
        return self.run_name(None)

    def run_name(self, fix: bool | None) -> str:
        """The name once the fix state was read from L1's binary: a user's kernel is named
        by what the rig read in it, never by the rig's own Debian variants."""
        vfio: str = self.l1_vfio
        if self.kernel.given:
            vfio = {True: "own-kernel-with-fix", False: "own-kernel-without-fix", None: "own-kernel"}[fix]
        name = f"{self.machine_profile.tag}-{self.interrupt_controller}-{vfio}-{self.consumer}"
        return name if self.scenario == Scenario.FLOW else f"{name}-{self.scenario}"

    def validate(self) -> RunSpec:
        _choice("--arch", self.arch, tuple(PROFILES))
        _choice("--machine", self.machine, tuple(m.name for m in machines_of(self.arch)))
        mach = self.machine_profile
        _choice("--ic", self.ic, mach.interrupt_controllers)
        _choice("--device", self.device, DEVICES)
        if self.device is not None and (why := mach.device_problem(self.device)):
            raise SpecError("--device", f"--device {self.device} --machine {mach.name}: {why}")
        _choice("--consumer", self.consumer, CONSUMERS)
        _choice("--scenario", self.scenario, SCENARIOS)
        if self.device is not None and (why := scenario_problem(self.scenario, self.device, mach)):
            raise SpecError("--scenario", f"--scenario {self.scenario} --device {self.device}: {why}")
        if self.scenario == Scenario.L2_REBOOT and self.consumer != Consumer.L2:
            raise SpecError("--scenario", f"--scenario {self.scenario} --consumer {self.consumer}: it reboots L2, "
                            "which fast mode has not; use --consumer l2")
        if self.scenario not in (Scenario.FLOW, Scenario.L2_REBOOT) and self.consumer != Consumer.USERSPACE:
            raise SpecError("--scenario", f"--scenario {self.scenario} --consumer {self.consumer}: only the userspace "
                            "consumer (fast mode) drives this scenario; add --consumer userspace")
        _choice("--l1-vfio", self.l1_vfio, L1_VFIO)
        _choice("--l2-accel", self.l2_accel, ACCELS)
        _number("--l1-smp", self.l1_smp, 1, MAX_L1_SMP, integer=True)
        _number("--confirm", self.confirm, 1, MAX_REPEAT, integer=True)
        self._validate_hold()
        if self.boot_timeout is not None:
            _number("--boot-timeout", self.boot_timeout, MIN_BOOT_TIMEOUT_S, MAX_SECONDS)
        self.drive.validate()
        self.kernel.validate()
        if self.consumer == Consumer.USERSPACE and self.l2_accel != AccelChoice.AUTO:
            raise SpecError("--l2-accel", f"--l2-accel {self.l2_accel} with --consumer userspace: there is no L2 "
                            "in fast mode; drop one of them")
        if self.kernel.given and self.l1_vfio != L1Vfio.FIXED:
            raise SpecError("--l1-vfio", "--l1-vfio unfixed rebuilds Debian's module; with --kernel, --kernel-deb or "
                            "--kernel-tree, build your kernel with or without the fix instead")
        existing_file("--qemu", self.qemu, executable=True)
        if self.out is not None:
            writable_dir("--out", self.out)
        return self.in_vocabulary()

    def in_vocabulary(self) -> RunSpec:
        """The same spec with its choices as the rig's vocabularies' members (a command line
        or a JSON file gives them as strings; once checked, they are members)."""
        return replace(self, ic=InterruptController(self.ic) if self.ic else None,
                       device=DeviceKind(self.device) if self.device else None, consumer=Consumer(self.consumer),
                       scenario=Scenario(self.scenario),
                       l1_vfio=L1Vfio(self.l1_vfio), l2_accel=AccelChoice(self.l2_accel),
                       expect=Outcome(self.expect) if self.expect else None)

    def _validate_hold(self) -> None:
        if self.hold is not None:
            _number("--hold", self.hold, MIN_HOLD_MINUTES, MAX_HOLD_MINUTES, unit="minutes")
            if self.confirm > 1:
                raise SpecError("--hold", f"--hold with --confirm {self.confirm}: a hold keeps one chain; "
                                "confirm the verdict first, then hold one run")
        elif self.detach:
            raise SpecError("--detach", "--detach without --hold: only a held chain goes on in the "
                            "background; add --hold")
        _choice("--expect", self.expect, (Outcome.PASS.value, Outcome.STALL.value, Outcome.FAIL.value))
        if self.hold_unexpected and self.expect is None:
            raise SpecError("--hold-unexpected", "--hold-unexpected without --expect: give the verdict the cell "
                            "should give (PASS, STALL or FAIL)")

    def holds(self, outcome: str) -> bool:
        """Whether the chain stays up after this verdict."""
        return self.hold is not None and not (self.hold_unexpected and outcome == self.expect)


@dataclass(frozen=True)
class BootSpec(OnAMachine):
    """`rig boot`: L1 up, one command over SSH, powered off."""

    arch: str
    machine: str | None = None             # None: the arch's default machine
    accel: str = "auto"
    kernel: Path | None = None
    command: str = "uname -a; grep -c . /proc/interrupts"
    timeout: float = timeouts.BOOT_COMMAND_BOOT_S
    qemu: Path | None = None
    out: Path | None = None

    def validate(self) -> BootSpec:
        _choice("--arch", self.arch, tuple(PROFILES))
        _choice("--machine", self.machine, tuple(m.name for m in machines_of(self.arch)))
        _choice("--accel", self.accel, ACCELS)
        if self.accel == AccelChoice.KVM and self.machine_profile.tcg_only:
            raise SpecError("--accel", f"--accel kvm --machine {self.machine_profile.name}: "
                            f"{self.machine_profile.tcg_only}")
        _number("--timeout", self.timeout, MIN_BOOT_TIMEOUT_S, MAX_SECONDS)
        if not self.command.strip():
            raise SpecError("--command", "--command '': give a command to run in L1")
        existing_file("--kernel", self.kernel)
        existing_file("--qemu", self.qemu, executable=True)
        if self.out is not None:
            writable_dir("--out", self.out)
        return self


@dataclass(frozen=True)
class MatrixSpec:
    """`rig matrix`: which cells, how often, how many at a time."""

    repeat: int = 1
    jobs: int | None = None           # None: as many as the machine holds
    shard: tuple[int, int] | None = None
    cells: tuple[str, ...] = ()       # glob patterns over cell ids; empty: all
    slow: bool = False
    scenarios: bool = False           # the scenarios beyond the flow too (fast mode's cells)
    drive: DriveSpec = field(default_factory=lambda: DriveSpec(pass_after=PASS_AFTER))
    out: Path | None = None
    snapshot: bool = True             # runs restore L1 from snapshots and save them (RunSpec.snapshot)
    hold_unexpected: float | None = None   # minutes a run whose verdict is not its cell's stays up

    @staticmethod
    def parse_shard(text: str | None) -> tuple[int, int] | None:
        if text is None:
            return None
        try:
            k, n = (int(x) for x in text.split("/"))
        except ValueError:
            raise SpecError("--shard", f"--shard {text}: use K/N with 1 <= K <= N, e.g. 2/4") from None
        if not 1 <= k <= n:
            raise SpecError("--shard", f"--shard {text}: use K/N with 1 <= K <= N, e.g. 2/4")
        return k, n

    @staticmethod
    def parse_cells(text: str | None) -> tuple[str, ...]:
        if text is None:
            return ()
        patterns = tuple(p.strip() for p in text.split(","))
        if not all(patterns):
            raise SpecError("--cells", f"--cells {text!r}: an empty pattern; give comma-separated globs, "
                            "e.g. 'ppc64-pseries-xive-*,*-userspace'")
        return patterns

    def validate(self) -> MatrixSpec:
        _number("--repeat", self.repeat, 1, MAX_REPEAT, integer=True)
        if self.hold_unexpected is not None:
            _number("--hold-unexpected", self.hold_unexpected, MIN_HOLD_MINUTES, MAX_HOLD_MINUTES, unit="minutes")
        if self.jobs is not None:
            _number("--jobs", self.jobs, 1, MAX_JOBS, integer=True)
        self.drive.validate()
        if self.out is not None:
            writable_dir("--out", self.out)
        return self

"""What a CPU offers for virtualization, and what that means for the chain's L1 and L2.

Pure functions over /proc/cpuinfo and /sys/module/*/parameters, so every host kind
(Intel, AMD, POWER with and without nesting, no KVM) is tested from recorded files. The
same choice serves the host (which module runs L1 under KVM) and L1 (which module runs L2).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rig.core.kinds import Accelerator
from rig.core.targets import KvmModule, TargetProfile
from rig.host.profiles import HostProfile

ParamReader = Callable[[str], str | None]   # a /sys path -> its text, or None if absent


def cpu_flags(cpuinfo: str) -> set[str]:
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    return flags


def kvm_module_for(modules: tuple[KvmModule, ...], cpuinfo: str) -> KvmModule | None:
    """The KVM module this CPU can use: the first whose flag it shows (vmx: kvm_intel,
    svm: kvm_amd), or the arch's only one (kvm-hv). None: no virtualization on this CPU."""
    flags = cpu_flags(cpuinfo)
    return next((m for m in modules if m.cpu_flag is None or m.cpu_flag in flags), None)


def read_sys(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def nested_param(module: KvmModule, read: ParamReader = read_sys) -> str | None:
    return read(f"/sys/module/{module.sysfs}/parameters/nested")


def nested_on(value: str | None) -> bool | None:
    return None if value is None else value in ("Y", "1")


@dataclass(frozen=True)
class VirtPlan:
    """Where L1 and L2 run on this host for one target, and why."""

    l1: str                    # "kvm" or "tcg"
    l1_why: str
    l2: str                    # "kvm" or "tcg": what the chain will get in L1
    l2_why: str
    module: str = ""           # the host's KVM module, e.g. "kvm_intel"
    nested: str | None = None  # its nested parameter as the host says it

    @property
    def warning(self) -> str | None:
        """What to say before a run starts: the host gives L1 KVM but not nesting."""
        if self.l1 == Accelerator.KVM and self.l2 == Accelerator.TCG:
            return f"the host cannot give L1 nested virtualization: {self.l2_why}"
        return None


def plan(host: HostProfile, target: TargetProfile, cpuinfo: str, kvm: tuple[bool, str],
         read: ParamReader = read_sys) -> VirtPlan:
    """L1 under KVM only when this host runs the target's guests natively, its CPU shows
    virtualization and /dev/kvm really ran a guest (`kvm`: the probe's answer). L2 then gets
    KVM only if the host's module lets L1 nest; under TCG, L1's emulated CPU offers it."""
    emulated = ("L1's emulated CPU offers virtualization: "
                f"{' or '.join(str(m) for m in target.l2.kvm_modules)} in L1")
    if host.kvm_target != target.name:
        return VirtPlan(Accelerator.TCG, f"{target.name} guest on a {host.machine} host", Accelerator.KVM, emulated)
    module = kvm_module_for(target.l2.kvm_modules, cpuinfo)
    if module is None:
        flags = ", ".join(m.cpu_flag for m in target.l2.kvm_modules if m.cpu_flag)
        return VirtPlan(Accelerator.TCG, f"the CPU shows no virtualization ({flags})", Accelerator.KVM, emulated)
    if not kvm[0]:
        return VirtPlan(Accelerator.TCG, kvm[1], Accelerator.KVM, emulated, module.sysfs)
    value = nested_param(module, read)
    nested = nested_on(value)
    if nested:
        return VirtPlan(Accelerator.KVM, kvm[1], Accelerator.KVM,
                        f"nested KVM: the host's {module.sysfs} has nested={value}", module.sysfs, value)
    fix = f"modprobe -r {module.name} && modprobe {module.name} nested=1"
    if nested is None:
        why = (f"the host's {module.sysfs} has no nested parameter to read: L2 runs under TCG inside "
               f"L1 unless L1 gets /dev/kvm")
    else:
        why = (f"the host's {module.sysfs} has nested={value}: L2 runs under TCG inside L1 (minutes "
               f"per boot instead of seconds); to nest: {fix}")
    return VirtPlan(Accelerator.KVM, kvm[1], Accelerator.TCG, why, module.sysfs, value)

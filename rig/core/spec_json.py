"""A RunSpec as JSON and back, for records that outlive the run (inputs.json): what cell was
run and how it was driven, never where results went or how to look at them, and no path.

The way back treats its input as a stranger's: every key known and required, every value
of its exact JSON type (a bool is not a number, a number is not a string), then the spec's
own validation (choices, bounds, combinations). The files a spec names (the user's kernel,
modules, .deb, QEMU) come separately, from a record that checks them by content
(rig.reports.reproducer), and are the only paths that get into the spec.
"""

from __future__ import annotations

from pathlib import Path

from rig.core import untrusted
from rig.core.errors import UserError
from rig.core.json_object import JsonObject
from rig.core.spec import MAX_SECONDS, DriveSpec, KernelUnderTestSpec, RunSpec

# Each key, the JSON types it may have (None: null allowed).
SPEC_FIELDS: dict[str, tuple[type, ...]] = {
    "arch": (str,), "machine": (str, type(None)), "ic": (str, type(None)), "device": (str, type(None)),
    "consumer": (str,), "l1_vfio": (str,), "l2_accel": (str,), "l1_smp": (int,),
    "boot_timeout": (int, float, type(None)), "l2_hang_s": (int, float), "snapshot": (bool,),
    "scenario": (str,),
}
# Keys a record may lack (one written before they existed), with the value it then means.
SPEC_DEFAULTS: JsonObject = {"scenario": "flow"}
DRIVE_FIELDS: dict[str, tuple[type, ...]] = {
    "duration": (int, float), "stall_window": (int, float, type(None)), "pass_after": (int,),
}
# The user's files, by the option that gives them to `rig run`.
FILE_ROLES = ("kernel", "modules", "kernel-deb", "qemu")


def to_json(spec: RunSpec, device: str | None = None) -> JsonObject:
    """The cell and its drive; `device` is the one the run chose when none was asked for
    (the default may change between versions)."""
    d = spec.drive
    return {"arch": spec.arch, "machine": spec.machine_profile.name, "ic": spec.interrupt_controller,
            "device": str(spec.device or device) if (spec.device or device) else None,
            "consumer": str(spec.consumer), "l1_vfio": str(spec.l1_vfio), "l2_accel": str(spec.l2_accel),
            "l1_smp": spec.l1_smp, "boot_timeout": spec.boot_timeout, "l2_hang_s": spec.l2_hang_s,
            "snapshot": spec.snapshot, "scenario": str(spec.scenario),
            "drive": {"duration": d.duration, "stall_window": d.stall_window, "pass_after": d.pass_after}}


def _number(x: float) -> str:
    """A number as a command line gives it back: short where that loses nothing."""
    short = f"{x:g}"
    return short if float(short) == x else repr(x)


def _maybe_float(x: float | None) -> float | None:
    return None if x is None else float(x)


def to_argv(spec: RunSpec, files: dict[str, Path], device: str | None = None) -> list[str]:
    """`rig run`'s options for the same cell (the inverse of rig.commands.run.spec_of), with
    the user's files by role (kernel, modules, kernel-deb, qemu); `device` as in to_json.
    The one place a spec becomes a command line: the reproducer shows it, the matrix runs it."""
    d = spec.drive
    opts = ["--arch", spec.arch, "--machine", spec.machine_profile.name, "--ic", spec.interrupt_controller,
            "--consumer", str(spec.consumer)]
    if spec.scenario != "flow":
        opts += ["--scenario", str(spec.scenario)]
    if not {"kernel", "kernel-deb"} & set(files):
        opts += ["--l1-vfio", str(spec.l1_vfio)]       # a user's kernel is as it was built
    opts += ["--l2-accel", str(spec.l2_accel), "--l1-smp", str(spec.l1_smp), "--duration", _number(d.duration),
             "--pass-after", str(d.pass_after)]
    if d.stall_window is not None:
        opts += ["--stall-window", _number(d.stall_window)]
    if spec.device or device:
        opts += ["--device", str(spec.device or device)]
    if spec.boot_timeout is not None:
        opts += ["--boot-timeout", _number(spec.boot_timeout)]
    if not spec.snapshot:
        opts.append("--no-snapshot")
    for role, path in files.items():
        opts += [f"--{role}", str(path)]
    return opts


def _typed(where: str, data: object, fields: dict[str, tuple[type, ...]],
           extra: tuple[str, ...] = (), defaults: JsonObject | None = None) -> JsonObject:
    """data is an object with exactly these keys (those in `defaults` may be missing, and
    take their default), each of its types; else one line."""
    d: JsonObject = untrusted.expect(data, dict, where)
    d = {**(defaults or {}), **d}
    keys, known = set(d), set(fields) | set(extra)
    if keys != known:
        unknown, missing = sorted(keys - known), sorted(known - keys)
        raise UserError(f"{where}: " + "; ".join(x for x in (f"unknown {unknown}" if unknown else "",
                                                             f"missing {missing}" if missing else "") if x))
    for key, types in fields.items():
        untrusted.expect(d[key], types, f"{where}.{key}")
    return d


def from_json(data: object, files: dict[str, Path], where: str = "spec") -> RunSpec:
    """The spec recorded in `data`, with the user's files (role -> checked path), validated
    as any `rig run`; UserError (one line naming the field) if it is not one."""
    d = _typed(where, data, SPEC_FIELDS, extra=("drive",), defaults=SPEC_DEFAULTS)
    drive = _typed(f"{where}.drive", d["drive"], DRIVE_FIELDS)
    unknown = sorted(set(files) - set(FILE_ROLES))
    if unknown:
        raise UserError(f"files: unknown role(s) {unknown}; the rig records only {', '.join(FILE_ROLES)}")
    kernel = KernelUnderTestSpec(kernel=files.get("kernel"), modules=files.get("modules"),
                                 deb=files.get("kernel-deb"))
    if not 1 <= d["l2_hang_s"] <= MAX_SECONDS:
        raise UserError(f"{where}.l2_hang_s: {d['l2_hang_s']!r} must be from 1 to {MAX_SECONDS:g} seconds")
    return RunSpec(arch=d["arch"], machine=d["machine"], ic=d["ic"], device=d["device"], consumer=d["consumer"],
                   scenario=d["scenario"], l1_vfio=d["l1_vfio"], l2_accel=d["l2_accel"], l1_smp=d["l1_smp"],
                   boot_timeout=d["boot_timeout"], l2_hang_s=float(d["l2_hang_s"]), snapshot=d["snapshot"],
                   drive=DriveSpec(float(drive["duration"]), _maybe_float(drive["stall_window"]), drive["pass_after"]),
                   kernel=kernel, qemu=files.get("qemu")).validate()

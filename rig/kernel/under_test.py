"""The kernel under test, brought by the user: checked before anything boots it.

Two ways in: `--kernel PATH [--modules DIR]` (what a kernel build leaves, or what
`make modules_install INSTALL_MOD_PATH=DIR` writes) and `--kernel-deb FILE.deb` (a Debian
or Ubuntu kernel package). Checks: the image's architecture, its version string against the
modules' directory, and the kernel options the chain needs, read from its config
(config-<release> beside it or in the package, a .config above it, or CONFIG_IKCONFIG).
"""

from __future__ import annotations

import gzip
import re
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from rig.core import timeouts
from rig.core.errors import UserError
from rig.core.targets import MachineProfile, TargetProfile, kernel_options
from rig.kernel.image_file import check_kernel

IKCONFIG_START, IKCONFIG_END = b"IKCFG_ST", b"IKCFG_ED"


@dataclass
class KernelUnderTest:
    kernel: Path
    release: str                  # uname -r
    version_string: str           # "Linux version ..." as the kernel prints it
    modules_dir: Path | None      # .../lib/modules/<release>
    config: dict[str, str]
    config_source: str
    source: str                   # how it was given, for the result
    warnings: list[str] = field(default_factory=list)

    def option(self, name: str) -> str | None:
        return self.config.get(name)


def version_string(kernel: Path) -> str:
    data = kernel.read_bytes()
    if data[0x202:0x206] == b"HdrS":  # bzImage: the setup header points at the string
        off = struct.unpack_from("<H", data, 0x20E)[0]
        return "Linux version " + data[0x200 + off:0x200 + off + 256].split(b"\0")[0].decode(errors="replace")
    m = re.search(rb"Linux version (\S+) [^\0\n]*", data)
    if not m:
        raise UserError(f"kernel {kernel}: no 'Linux version' string in it; is it a kernel image?")
    return m.group(0).decode(errors="replace")


def release_of(version: str) -> str:
    return version.split()[2]


def parse_config(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if line.startswith("CONFIG_") and "=" in line:
            k, _, v = line.partition("=")
            out[k] = v.strip().strip('"')
    return out


def ikconfig(kernel: Path) -> str | None:
    data = kernel.read_bytes()
    start = data.find(IKCONFIG_START)
    if start < 0:
        return None
    end = data.find(IKCONFIG_END, start)
    try:
        return gzip.decompress(data[start + len(IKCONFIG_START):end]).decode()
    except (OSError, EOFError):
        return None


def find_config(kernel: Path, release: str, modules_dir: Path | None) -> tuple[str, str]:
    candidates = [kernel.parent / f"config-{release}", kernel.parent / ".config",
                  kernel.parent.parent / ".config", kernel.parent.parent.parent.parent / ".config"]
    if modules_dir:
        candidates.append(modules_dir / "build/.config")
    for c in candidates:
        if c.is_file():
            return c.read_text(errors="replace"), str(c)
    text = ikconfig(kernel)
    if text:
        return text, "CONFIG_IKCONFIG in the kernel image"
    raise UserError(f"kernel {kernel}: no config found (config-{release} beside it, a .config "
                    "in its build tree, or CONFIG_IKCONFIG): the rig cannot check its options")


def _is_modules_tree(d: Path) -> bool:
    return d.is_dir() and ((d / "kernel").is_dir() or (d / "modules.order").is_file())


def find_modules(modules: Path, release: str) -> Path:
    """Accept lib/modules/<release> itself, or an INSTALL_MOD_PATH root above it."""
    if not modules.is_dir():
        raise UserError(f"--modules {modules}: no such directory")
    if modules.name == release and _is_modules_tree(modules):
        return modules
    bases = [modules / "lib/modules", modules / "usr/lib/modules", modules]
    for base in bases:
        if _is_modules_tree(base / release):
            return base / release
    found = sorted({p.name for b in bases if b.is_dir() for p in b.iterdir() if _is_modules_tree(p)})
    if _is_modules_tree(modules):
        found.append(modules.name)
    if found:
        raise UserError(f"--modules {modules} holds modules for {', '.join(found)}, not for the "
                        f"kernel's {release}: pass the modules of this kernel build")
    raise UserError(f"--modules {modules}: no modules tree for {release} there (expected "
                    f"lib/modules/{release}, as `make modules_install INSTALL_MOD_PATH=` writes)")


def check_options(kut: KernelUnderTest, profile: TargetProfile, mach: MachineProfile | None = None) -> None:
    """Each option the chain needs on this machine (every machine of the arch if None) must
    be y or m; a missing KVM only downgrades L2 to TCG."""
    for opt in kernel_options(profile, mach):
        if kut.option(opt) not in ("y", "m"):
            raise UserError(f"kernel {kut.release} lacks {opt} (config: {kut.config_source}), "
                            f"which the chain needs in L1: enable it (rig/kernel/config/"
                            f"{profile.name}.config has the full fragment)")
        if kut.option(opt) == "m" and kut.modules_dir is None:
            raise UserError(f"kernel {kut.release} has {opt}=m but no modules were given: "
                            "pass --modules DIR")
    if kut.option(profile.kvm_config) not in ("y", "m"):
        kut.warnings.append(f"{profile.kvm_config} is off: L2 runs under TCG (slower)")


def from_paths(kernel: str, modules: str | None, profile: TargetProfile,
               mach: MachineProfile | None = None) -> KernelUnderTest:
    kpath = check_kernel(kernel, profile)
    version = version_string(kpath)
    release = release_of(version)
    mdir = find_modules(Path(modules), release) if modules else None
    config, where = find_config(kpath, release, mdir)
    kut = KernelUnderTest(kpath, release, version, mdir, parse_config(config), where,
                          f"--kernel {kernel}" + (f" --modules {modules}" if modules else ""))
    check_options(kut, profile, mach)
    return kut


def from_deb(deb: str, profile: TargetProfile, workdir: Path, mach: MachineProfile | None = None) -> KernelUnderTest:
    path = Path(deb)
    if not path.is_file():
        raise UserError(f"--kernel-deb {deb}: no such file")
    info = subprocess.run(["dpkg-deb", "--field", str(path), "Package", "Architecture", "Version"],
                          capture_output=True, text=True, timeout=timeouts.QEMU_QUERY_S)
    if info.returncode != 0:
        raise UserError(f"--kernel-deb {deb} is not a readable Debian package "
                        f"({info.stderr.strip().splitlines()[-1] if info.stderr.strip() else 'truncated?'})")
    fields = dict(line.split(": ", 1) for line in info.stdout.strip().splitlines() if ": " in line)
    if fields.get("Architecture") != profile.debian_arch:
        raise UserError(f"--kernel-deb {deb} is for {fields.get('Architecture')}, not "
                        f"{profile.debian_arch}: pass a {profile.name} kernel or change --arch")
    r = subprocess.run(["dpkg-deb", "-x", str(path), str(workdir)], capture_output=True, text=True,
                       timeout=timeouts.BUILD_S)
    if r.returncode != 0:
        raise UserError(f"--kernel-deb {deb} cannot be unpacked (truncated or damaged?): "
                        f"{r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ''}")
    images = sorted(p for p in (workdir / "boot").glob("vmlinu[xz]-*")) if (workdir / "boot").is_dir() else []
    if not images:
        raise UserError(f"--kernel-deb {deb} ({fields.get('Package')}) holds no /boot/vmlinuz-* "
                        "or vmlinux-*: pass the linux-image package, not a meta or headers one")
    kpath = check_kernel(images[-1], profile)
    version = version_string(kpath)
    release = release_of(version)
    mdir = next((d for d in (workdir / "lib/modules" / release, workdir / "usr/lib/modules" / release)
                 if d.is_dir()), None)
    config, where = find_config(kpath, release, mdir)
    kut = KernelUnderTest(kpath, release, version, mdir, parse_config(config), where,
                          f"--kernel-deb {path.name} ({fields.get('Package')} {fields.get('Version')})")
    check_options(kut, profile, mach)
    return kut

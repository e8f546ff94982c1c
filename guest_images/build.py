"""Builds the L2 and L1 images: a Debian kernel plus an initramfs cut from Debian packages.

L2: busybox, dropbear, the NIC module. L1: the same plus the vfio/kvm/iommu modules, the
L1-arch qemu-system-* with its libraries and firmware, and the L2 image under /l2.
Each image is a cache entry keyed by the resolved packages, the builder's code, the
profile and the SSH keys: a second build with nothing changed is a lookup.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from guest_images.cpio import CpioWriter
from rig.core.cache import Cache, content_key, read_meta, sha256_file, tree_hash
from rig.core.errors import UserError
from rig.core.kinds import ImageRole
from rig.core.progress import Progress
from rig.core.targets import L2_MODULES, TargetProfile
from rig.debian.apt import extract
from rig.debian.packages import Lock, Resolver
from rig.debian.rootfs import copy_into, elf_closure
from rig.host.keys import KeySet
from rig.kernel.fix_state import module_has_fix, vmlinux_has_fix

from .consumer_build import INSTALLED_AS, build_consumer
from .kmods import ModuleTree
from .recipe import L2_PROGRAMS, guest_packages, l1_programs
from .vfio_module import UnfixedVfio

VFIO_VARIANTS = ("fixed", "unfixed")

HERE = Path(__file__).parent
CODE_FILES = [*HERE.glob("*.py"), *HERE.glob("init/*"), *HERE.glob("consumer/*.c"), *HERE.glob("consumer/*.h"),
              *[HERE.parent / "rig" / n for n in ("debian/rootfs.py", "host/keys.py")]]


@dataclass(frozen=True)
class GuestImage:
    role: ImageRole
    kernel: Path
    initrd: Path
    kernel_version: str  # uname -r of the kernel
    meta: dict

    @classmethod
    def from_entry(cls, role: ImageRole, entry: Path) -> GuestImage:
        meta = read_meta(entry)
        return cls(role, entry / "kernel", entry / "initrd", meta["kernel_version"], meta)


@dataclass(frozen=True)
class KernelSource:
    """The kernel an image boots and the modules tree it takes modules from."""

    kernel: Path
    moddir: Path | None          # lib/modules/<release>; None: everything built in
    release: str
    record: dict                 # how it is described in the image's manifest and results


def built_in_fix(kernel: Path) -> bool | None:
    """The fix state of a kernel with vfio built in: from the kernel file if it is an ELF
    vmlinux, else from the vmlinux its build tree left beside a bzImage."""
    for candidate in (kernel, kernel.parent.parent.parent.parent / "vmlinux", kernel.parent / "vmlinux"):
        if candidate.is_file():
            with candidate.open("rb") as f:
                if f.read(4) == b"\x7fELF":
                    return vmlinux_has_fix(candidate)
    return None


def moddir_fingerprint(moddir: Path | None) -> list:
    """Names, sizes and mtimes of a user's modules tree: its part of an image key."""
    if moddir is None:
        return []
    return sorted((str(p.relative_to(moddir)), p.stat().st_size, p.stat().st_mtime_ns)
                  for p in moddir.rglob("*") if p.is_file())


def kernel_package(lock: Lock, profile: TargetProfile):
    pkgs = [p for p in lock.starting("linux-image-") if p.name != f"linux-image-{profile.kernel_flavour}"]
    if len(pkgs) != 1:
        raise ValueError(f"expected one kernel image package, got {[p.name for p in pkgs]}")
    return pkgs[0]


class ImageBuilder:
    def __init__(self, cache: Cache, resolver: Resolver, keys: KeySet, progress: Progress):
        self.cache, self.resolver, self.keys, self.progress = cache, resolver, keys, progress
        self._staging: dict[str, Path] = {}
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    def close(self) -> None:
        if self._tmp:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> ImageBuilder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _lock(self, profile: TargetProfile) -> Lock:
        return self.resolver.lock(guest_packages(profile))

    def _key(self, recipe: str, profile: TargetProfile, *extra: object) -> str:
        """The cache key of an image: what it is (its role, or a user's kernel's recipe) and
        everything it is built from."""
        return content_key(recipe, asdict(profile), self._lock(profile).key(), tree_hash(CODE_FILES),
                           self.keys.fingerprint(), *extra)

    def l2(self, profile: TargetProfile) -> GuestImage:
        key = self._key(ImageRole.L2, profile)
        entry = self.cache.build("images", key, lambda tmp: self._build(
            tmp, profile, ImageRole.L2, self._debian_kernel(profile)))
        return GuestImage.from_entry(ImageRole.L2, entry)

    def l1(self, profile: TargetProfile, vfio: str = "fixed") -> GuestImage:
        """L1; vfio="unfixed" swaps in vfio-pci-core.ko/vfio-pci.ko rebuilt without the fix."""
        if vfio not in VFIO_VARIANTS:
            raise UserError(f"--l1-vfio {vfio}: use one of {', '.join(VFIO_VARIANTS)}")
        l2 = self.l2(profile)
        swap = {}
        if vfio == "unfixed":
            kver = kernel_package(self._lock(profile), profile).name.removeprefix("linux-image-")
            swap = UnfixedVfio(self.cache, self.resolver, self.progress).modules(profile, kver)
        key = self._key(ImageRole.L1, profile, l2.initrd.parent.name, vfio,
                        sorted((k, str(v.parent.name)) for k, v in swap.items()))
        entry = self.cache.build("images", key, lambda tmp: self._build(
            tmp, profile, ImageRole.L1, self._debian_kernel(profile), l2, swap))
        return GuestImage.from_entry(ImageRole.L1, entry)

    def l1_with_kernel(self, profile: TargetProfile, kernel: KernelSource) -> GuestImage:
        """L1 around a user's kernel and modules (the kernel under test); L2 stays Debian's.
        A kernel with everything built in puts nothing of its own in the initramfs but its
        release: the initramfs is built once per release and shared (hard-linked) by every
        kernel of that release, so a rebuilt kernel (a bisect step, a one-file change) costs
        a copy of the kernel, not a 120 MB initramfs."""
        l2 = self.l2(profile)
        if kernel.moddir is None:
            return self._l1_built_in(profile, kernel, l2)
        key = self._key("l1-user", profile, l2.initrd.parent.name, sha256_file(kernel.kernel),
                        kernel.release, moddir_fingerprint(kernel.moddir))
        entry = self.cache.build("images", key,
                                 lambda tmp: self._build(tmp, profile, ImageRole.L1, kernel, l2))
        return GuestImage.from_entry(ImageRole.L1, entry)

    def _l1_built_in(self, profile: TargetProfile, kernel: KernelSource, l2: GuestImage) -> GuestImage:
        base = self.cache.build("images", self._key("l1-user-initrd", profile, l2.initrd.parent.name, kernel.release),
                                lambda tmp: self._build(tmp, profile, ImageRole.L1, kernel, l2))
        key = self._key("l1-user", profile, base.name, sha256_file(kernel.kernel), kernel.release)
        return GuestImage.from_entry(ImageRole.L1, self.cache.build("images", key,
                                                            lambda tmp: self._with_kernel(tmp, base, kernel)))

    def _with_kernel(self, out: Path, base: Path, kernel: KernelSource) -> dict:
        """base's initramfs (hard-linked) with this kernel; what is read from the kernel, again."""
        try:
            os.link(base / "initrd", out / "initrd")
        except OSError:             # another file system: a copy
            shutil.copy2(base / "initrd", out / "initrd")
        shutil.copy2(kernel.kernel, out / "kernel")
        self.progress.note(f"L1 image: the {kernel.release} initramfs with this kernel")
        return {**read_meta(base), "kernel_package": kernel.record, "vfio_intx_fix": built_in_fix(kernel.kernel),
                "vfio_intx_fix_from": "vmlinux (vfio-pci built in)"}

    def _debian_kernel(self, profile: TargetProfile) -> KernelSource:
        staging = self._staging_for(profile)
        kpkg = kernel_package(self._lock(profile), profile)
        kver = kpkg.name.removeprefix("linux-image-")
        moddir = next(p for p in (staging / "lib/modules" / kver, staging / "usr/lib/modules" / kver)
                      if p.is_dir())
        return KernelSource(staging / "boot" / profile.kernel_file.format(version=kver), moddir, kver,
                            {"name": kpkg.name, "version": kpkg.version, "from": "Debian archive"})

    def _staging_for(self, profile: TargetProfile) -> Path:
        """All of the arch's guest packages unpacked once per process (builds cut from it)."""
        if profile.name not in self._staging:
            pset = guest_packages(profile)
            lock = self._lock(profile)
            debs = self.resolver.fetch(pset, lock)
            if self._tmp is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="intx-rig-staging-")
            staging = Path(self._tmp.name) / profile.name
            self.progress.step(f"unpacking {len(debs)} {profile.debian_arch} packages")
            extract(list(debs.values()), staging)
            self._staging[profile.name] = staging
        return self._staging[profile.name]

    def _build(self, out: Path, profile: TargetProfile, role: ImageRole, kernel: KernelSource,
               l2: GuestImage | None = None, swap: dict[str, Path] | None = None) -> dict:
        self.progress.step(f"building {role.upper()} image for {profile.name}")
        staging = self._staging_for(profile)
        lock = self._lock(profile)
        kver = kernel.release
        root = out / "root"
        programs = list(l1_programs(profile) if role == ImageRole.L1 else L2_PROGRAMS)
        boot_modules = list(profile.l1_modules if role == ImageRole.L1 else L2_MODULES)
        modules = list(profile.image_modules if role == ImageRole.L1 else L2_MODULES)
        if role == ImageRole.L1:
            programs += self._qemu_modules(staging, profile)
        for path in sorted(elf_closure(staging, programs, profile.triplet)):
            copy_into(staging, root, path)
        if role == ImageRole.L1:
            assert l2 is not None, "an L1 image carries its L2"
            for fw in profile.qemu_firmware:
                copy_into(staging, root, fw)
            consumer = root / INSTALLED_AS.lstrip("/")
            consumer.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(build_consumer(self.cache, profile), consumer)
            (root / "l2").mkdir()
            shutil.copy2(l2.kernel, root / "l2/kernel")
            shutil.copy2(l2.initrd, root / "l2/initrd")
        installed = self._install_modules(kernel, modules, root)
        vfio_dir = root / "lib/modules" / kver / "kernel/drivers/vfio/pci"
        for name, module in (swap or {}).items():
            shutil.copy2(module, vfio_dir / name)
        # Read from the binary in the image, never from how it was asked for: the module,
        # or, with vfio built in, the vmlinux (None: neither could be read).
        core = vfio_dir / "vfio-pci-core.ko"
        vfio_fix, fix_from = None, None
        if role == ImageRole.L1:
            vfio_fix = module_has_fix(core.read_bytes()) if core.exists() else built_in_fix(kernel.kernel)
            fix_from = "vfio-pci-core.ko" if core.exists() else "vmlinux (vfio-pci built in)"
        self._write_config(root, profile, role, [m for m in boot_modules if m in installed])
        shutil.copy2(kernel.kernel, out / "kernel")
        self._write_initrd(root, out / "initrd")
        shutil.rmtree(root)
        size = (out / "initrd").stat().st_size
        self.progress.note(f"{role.upper()} initramfs {size / 1e6:.1f} MB, kernel {kver}")
        return {
            "role": role, "arch": profile.name, "kernel_version": kver,
            "kernel_package": kernel.record,
            "modules": modules, "boot_modules": boot_modules,
            "vfio_rebuilt": sorted(swap or {}),
            "vfio_intx_fix": vfio_fix,
            "vfio_intx_fix_from": fix_from,
            "l2_kernel_version": l2.kernel_version if l2 else None,   # the kernel under /l2
            "packages": {p.name: p.version for p in lock.packages},
            "resolved_at": lock.resolved_at,
        }

    def _qemu_modules(self, staging: Path, profile: TargetProfile) -> list[str]:
        # Debian builds QEMU with loadable modules; TCG itself is one (accel-tcg-*.so).
        moddir = staging / "usr/lib" / profile.triplet / "qemu"
        return sorted(f"/{p.relative_to(staging)}" for p in moddir.glob("accel-*.so"))

    def _install_modules(self, kernel: KernelSource, names: list[str], root: Path) -> set[str]:
        """The named modules and their dependencies; returns the names now loadable as
        modules (built-in ones are skipped: there is nothing to load)."""
        dest = root / "lib/modules" / kernel.release
        dest.mkdir(parents=True)
        if kernel.moddir is None:
            # A kernel with everything built in: busybox modprobe still wants a modules.dep
            # to say "not found" instead of failing to open it.
            (dest / "modules.dep").write_text("")
            return set()
        tree = ModuleTree(kernel.moddir)
        if kernel.record.get("from") != "Debian archive":
            # A user's kernel: what it lacks was checked against its config already; the
            # rest (the x86 power-button watcher's modules) is optional.
            names = [n for n in names if tree.available(n)]
        loaded = tree.install(names, dest)
        return {n for n in names if n.replace("-", "_") in loaded}

    def _write_config(self, root: Path, profile: TargetProfile, role: ImageRole, modules: list[str]) -> None:
        etc = root / "etc"
        (etc / "rig").mkdir(parents=True, exist_ok=True)
        (etc / "rig/guest.env").write_text(
            f'RIG_ROLE="{role}"\nRIG_MODULES="{" ".join(modules)}"\n'
            f'RIG_CONSOLE="{profile.console}"\nRIG_PROMPT="rig-{role}# "\n')
        (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
        (etc / "group").write_text("root:x:0:\n")
        (etc / "shells").write_text("/bin/sh\n")
        (etc / "dropbear").mkdir(exist_ok=True)
        (etc / "dropbear/host_key").write_bytes(self.keys.host_private)
        (etc / "dropbear/host_key").chmod(0o600)
        ssh = root / "root/.ssh"
        ssh.mkdir(parents=True)
        (root / "root").chmod(0o700)
        ssh.chmod(0o700)
        (ssh / "authorized_keys").write_text(self.keys.client_public + "\n")
        (ssh / "authorized_keys").chmod(0o600)
        (root / "sbin").mkdir(exist_ok=True)
        # The kernel runs /sbin/poweroff on a pseries EPOW event: make it reach busybox.
        (root / "sbin/poweroff").symlink_to("/bin/busybox")
        init = root / "init"
        shutil.copy2(HERE / "init/init", init)
        init.chmod(0o755)

    def _write_initrd(self, root: Path, dest: Path) -> None:
        # Uncompressed: under TCG the guest decompressing would cost more than QEMU
        # loading a larger file.
        with open(dest, "wb") as f:
            w = CpioWriter(f)
            w.add_dir("dev")
            w.add_chardev("dev/console", 5, 1)
            w.add_chardev("dev/null", 1, 3, 0o666)
            w.add_tree(root)
            w.finish()

"""What building a chain (or booting a guest) draws on: the cache, the Debian resolver,
the SSH keys, the L0 QEMU and the image builder, each made once, when first needed."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from guest_images.build import ImageBuilder
from rig.core.cache import Cache
from rig.core.progress import Progress
from rig.core.targets import TargetProfile
from rig.debian.packages import Resolver
from rig.host.keys import KeySet, load_or_create
from rig.host.qemu import QemuBinary, choose_qemu


class Session:
    def __init__(self, cache_dir: Path | None = None, refresh: bool = False, quiet: bool = False,
                 qemu: Path | None = None, progress: Progress | None = None):
        self.cache_dir, self.refresh, self.explicit_qemu = cache_dir, refresh, qemu
        self.progress = progress or Progress(quiet=quiet)

    @cached_property
    def cache(self) -> Cache:
        return Cache(self.cache_dir)

    @cached_property
    def resolver(self) -> Resolver:
        return Resolver(self.cache, self.progress, refresh=self.refresh)

    @cached_property
    def keys(self) -> KeySet:
        return load_or_create(self.cache.root / "keys")

    def qemu(self, prof: TargetProfile) -> QemuBinary:
        return choose_qemu(prof, self.cache, self.resolver, self.progress,
                           explicit=str(self.explicit_qemu) if self.explicit_qemu else None)

    def builder(self) -> ImageBuilder:
        return ImageBuilder(self.cache, self.resolver, self.keys, self.progress)

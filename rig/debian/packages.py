"""Package sets: named groups of Debian packages, resolved once into a lock, then fetched.

Resolution asks the archive which versions the names mean today and records them (with
sha256) in a lock in the cache. Later runs use the lock and touch no network; `--refresh`
resolves again. The lock's content is part of every image key, so a new kernel in
bookworm-backports means a new image, never a stale one under the old name.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rig.core.cache import Cache, content_key
from rig.core.errors import UserError
from rig.core.progress import Progress
from rig.debian.apt import AptContext, DebPackage, deb_ok, first_dependency


@dataclass(frozen=True)
class Want:
    """Some package names, from one target release, with or without their dependencies.

    deps=False takes the named packages alone. With metapackage=True each name is a
    metapackage (linux-image-<flavour>) resolved to the versioned package it points at,
    and that alone is taken (not initramfs-tools, systemd and the rest apt would pull in).
    """

    packages: tuple[str, ...]
    release: str | None = None
    deps: bool = True
    metapackage: bool = False


@dataclass(frozen=True)
class PackageSet:
    name: str
    arch: str
    suites: tuple[str, ...]
    wants: tuple[Want, ...] = field(default=())

    def key(self) -> str:
        return content_key(asdict(self))


@dataclass
class Lock:
    """The resolved set: exact packages, and when they were resolved."""

    packages: list[DebPackage]
    resolved_at: str

    def by_name(self, name: str) -> DebPackage:
        for p in self.packages:
            if p.name == name:
                return p
        raise KeyError(name)

    def starting(self, prefix: str) -> list[DebPackage]:
        return [p for p in self.packages if p.name.startswith(prefix)]

    def key(self) -> str:
        return content_key([(p.name, p.version, p.arch, p.sha256) for p in self.packages])

    def to_json(self) -> dict:
        return {"resolved_at": self.resolved_at, "packages": [p.to_json() for p in self.packages]}

    @classmethod
    def from_json(cls, d: dict) -> Lock:
        return cls([DebPackage.from_json(p) for p in d["packages"]], d["resolved_at"])


class Resolver:
    """Resolves package sets into locks and fetches their .debs, through the cache."""

    def __init__(self, cache: Cache, progress: Progress | None = None, refresh: bool = False):
        self.cache = cache
        self.progress = progress or Progress()
        self.refresh = refresh
        self._contexts: dict[tuple, AptContext] = {}
        self._updated: set[tuple] = set()

    def context(self, pset: PackageSet) -> AptContext:
        k = (pset.arch, pset.suites)
        if k not in self._contexts:
            root = self.cache.path("apt", content_key(k))
            self._contexts[k] = AptContext(root, pset.arch, pset.suites, progress=self.progress)
        return self._contexts[k]

    def _ready_context(self, pset: PackageSet, fresh: bool) -> AptContext:
        ctx = self.context(pset)
        k = (pset.arch, pset.suites)
        if k not in self._updated and (fresh or not ctx.has_lists()):
            ctx.update()
            self._updated.add(k)
        return ctx

    def lock(self, pset: PackageSet) -> Lock:
        path = ("locks", f"{pset.name}-{pset.key()}.json")
        if not self.refresh and (found := self._recorded(path)):
            return found
        with self.cache.exclusive(f"apt-{pset.arch}"):   # one apt per arch at a time
            if not self.refresh and (found := self._recorded(path)):
                return found                              # resolved while we waited
            lock = self._resolve(pset)
            self.cache.write_json(lock.to_json(), *path)
        return lock

    def _recorded(self, path: tuple[str, str]) -> Lock | None:
        data = self.cache.read_json(*path)
        try:
            return Lock.from_json(data) if data else None
        except (KeyError, TypeError):
            return None   # a damaged lock is resolved again

    def _resolve(self, pset: PackageSet) -> Lock:
        self.progress.step(f"resolving package set {pset.name} ({pset.arch})")
        ctx = self._ready_context(pset, fresh=True)
        pins: dict[str, tuple[str, str, str]] = {}
        for want in pset.wants:
            for pin in self._resolve_want(ctx, want):
                pins.setdefault(pin[0], pin)
        packages = ctx.describe(sorted(pins.values()))
        return Lock(packages, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

    def _resolve_want(self, ctx: AptContext, want: Want) -> list[tuple[str, str, str]]:
        if want.deps:
            return ctx.closure(list(want.packages), want.release)
        pins = []
        for name in want.packages:
            real = ctx.candidate_depends(name, want.release) if want.metapackage else name
            picked = [p for p in ctx.closure([real], want.release) if p[0] == real]
            if not picked:
                raise UserError(f"{name} ({ctx.arch}) resolves to {real}, which apt cannot install")
            pins += picked
        return pins

    def fetch(self, pset: PackageSet, lock: Lock) -> dict[str, Path]:
        """name -> verified .deb path for every package of the lock."""
        dest = self.cache.root / "debs" / pset.arch
        local = {p.name: dest / p.deb_name for p in lock.packages}
        missing = [p for p in lock.packages if not _present(local[p.name], p)]
        if missing:
            with self.cache.exclusive(f"apt-{pset.arch}"):
                missing = [p for p in missing if not _present(local[p.name], p)]
                if missing:
                    self._ready_context(pset, fresh=False).download(missing, dest)
        return local


def _present(path: Path, pkg: DebPackage) -> bool:
    # Fetching only happens when an image is (re)built, so a full check is affordable.
    return deb_ok(path, pkg)


__all__ = ["Want", "PackageSet", "Lock", "Resolver", "first_dependency"]

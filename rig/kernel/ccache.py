"""The compiler cache of `rig kernel build`: Debian's ccache, its store in the rig's cache.

kbuild alone recompiles only what changed in one build directory; ccache also serves a
build directory that is new (a bisect in a fresh clone, CI unpacking the same tree again
in another temporary directory) from what any earlier build compiled. Paths are made
relative to the common parent of the tree and the build directory (base_dir), so the same
sources unpacked elsewhere hit. Entries are keyed by the compiler's content, its
arguments and the preprocessed source: a changed header or compiler is a miss, never a
stale object. Each build writes its own counters (stats_log), so two builds side by side
each report their own hit rate.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from rig.core import timeouts

CCACHE = "ccache"
STORE = "ccache"                  # under the rig's cache root
MAX_SIZE = "4G"                   # a minimal build of both arches takes about 0.3 GB
STATS_LOG = "rig-ccache.log"      # in the build directory; one build's counters
HIT_LINES = ("direct_cache_hit", "preprocessed_cache_hit")
MISS_LINES = ("cache_miss",)


@dataclass(frozen=True)
class CacheCounts:
    """Compilations served from the cache and compiled, in one build or in the store."""

    hits: int
    misses: int

    @property
    def calls(self) -> int:
        return self.hits + self.misses

    def describe(self) -> str:
        if not self.calls:
            return "no compilation went through ccache"
        return f"{self.hits} of {self.calls} compilations from ccache ({100 * self.hits / self.calls:.0f}%)"

    @classmethod
    def from_stats_log(cls, text: str) -> CacheCounts:
        """ccache's stats_log: one counter name per line, `# file` lines between calls."""
        seen = Counter(line.strip() for line in text.splitlines() if not line.startswith("#"))
        return cls(sum(seen[k] for k in HIT_LINES), sum(seen[k] for k in MISS_LINES))

    @classmethod
    def from_print_stats(cls, text: str) -> CacheCounts:
        """`ccache --print-stats`: tab-separated name and value per line."""
        values = dict(line.split("\t", 1) for line in text.splitlines() if "\t" in line)
        number = lambda k: int(values.get(k, "0").strip() or 0)   # noqa: E731
        return cls(sum(number(k) for k in HIT_LINES), sum(number(k) for k in MISS_LINES))


# Counters of a call ccache could not cache at all (ccache's own names), beside hits and misses.
UNCACHEABLE = ("called_for_link", "called_for_preprocessing", "preprocessor_error", "compile_failed",
               "unsupported_compiler_option", "unsupported_source_language", "could_not_use_modules",
               "autoconf_test", "no_input_file", "multiple_source_files", "output_to_stdout")
LOW_HIT_RATE = 0.5


@dataclass(frozen=True)
class Misses:
    """Why one build's compilations missed, as far as ccache's stats_log tells: where the
    missed sources are, and the calls it could not cache."""

    by_dir: tuple[tuple[str, int], ...]        # source directory (two levels), missed calls; most first
    uncacheable: tuple[tuple[str, int], ...]   # ccache's counter, calls

    @classmethod
    def from_stats_log(cls, text: str) -> Misses:
        dirs: Counter[str] = Counter()
        other: Counter[str] = Counter()
        source = ""
        for line in text.splitlines():
            if line.startswith("#"):
                source = line[1:].strip()
            elif line.strip() in MISS_LINES:
                dirs[source_dir(source)] += 1
            elif line.strip() in UNCACHEABLE:
                other[line.strip()] += 1
        return cls(tuple(dirs.most_common()), tuple(other.most_common()))

    def explain(self, counts: CacheCounts) -> str:
        """One line for a build summary whose hit rate is low; "" when it is not."""
        if counts.calls < 20 or counts.hits >= LOW_HIT_RATE * counts.calls:
            return ""
        where = ", ".join(f"{d} {n}" for d, n in self.by_dir[:5])
        why = ("nearly every file: the configuration, a header most files include or the compiler differs "
               "from every build before (a first build of a configuration misses everything)"
               if counts.misses >= 0.9 * counts.calls else
               "these sources, or a header they include, differ from every build before")
        line = f"{counts.misses} missed, {why}; most under {where}"
        if self.uncacheable:
            line += "; not cacheable: " + ", ".join(f"{k} {n}" for k, n in self.uncacheable[:4])
        return line


def source_dir(path: str) -> str:
    """A source's directory, two levels deep, as kbuild names it from the build directory."""
    parts = [p for p in Path(path).parts if p not in ("..", ".", "/")]
    return "/".join(parts[:2]) if len(parts) > 2 else "/".join(parts[:-1]) or "(none)"


class CompilerCache:
    """ccache's store under the rig's cache root, and the environment a build runs it with."""

    def __init__(self, cache_root: Path):
        self.dir = cache_root / STORE

    @staticmethod
    def available() -> bool:
        return shutil.which(CCACHE) is not None

    @property
    def cc_prefix(self) -> str:
        """What goes before the compiler's name in kbuild's CC and HOSTCC."""
        return f"{CCACHE} "

    def environment(self, tree: Path, build_dir: Path) -> dict[str, str]:
        base = os.path.commonpath([tree, build_dir])
        env = {"CCACHE_DIR": str(self.dir), "CCACHE_MAXSIZE": MAX_SIZE,
               "CCACHE_COMPILERCHECK": "content", "CCACHE_STATSLOG": str(build_dir / STATS_LOG)}
        if base != "/":         # rewriting system headers' paths would only cost hits
            env["CCACHE_BASEDIR"] = base
        return env

    @staticmethod
    def start_counting(build_dir: Path) -> None:
        (build_dir / STATS_LOG).write_text("")

    @staticmethod
    def counted(build_dir: Path) -> tuple[CacheCounts, Misses]:
        log = build_dir / STATS_LOG
        text = log.read_text() if log.is_file() else ""
        return CacheCounts.from_stats_log(text), Misses.from_stats_log(text)

    def totals(self) -> tuple[CacheCounts, str] | None:
        """Every build's counters since the store was made, and its size; None before any."""
        if not self.available() or not self.dir.is_dir():
            return None
        env = {**os.environ, "CCACHE_DIR": str(self.dir)}
        stats = subprocess.run([CCACHE, "--print-stats"], env=env, capture_output=True, text=True,
                               timeout=timeouts.CCACHE_STATS_S, check=False)
        if stats.returncode != 0:
            return None
        values = dict(line.split("\t", 1) for line in stats.stdout.splitlines() if "\t" in line)
        size_mb = int(values.get("cache_size_kibibyte", "0")) / 1024
        return CacheCounts.from_print_stats(stats.stdout), f"{size_mb:.0f} MB of {MAX_SIZE}"

"""Debian packages by name: resolve versions, download (apt verifies), extract.

An AptContext is a private apt configuration (its own sources, lists and empty dpkg
status) for one architecture and one set of suites, so the host's apt is never touched
and a foreign architecture (ppc64el on an amd64 host) needs nothing special: packages
are only unpacked with dpkg-deb, their code never runs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from rig.core import timeouts
from rig.core.cache import sha256_file
from rig.core.errors import InfraError, UserError
from rig.core.progress import Progress

DEFAULT_MIRROR = "http://deb.debian.org/debian"
# apt's words for an index caught while the mirror is being updated: worth a retry.
MIRROR_SYNC = re.compile(r"unexpected size|Hash Sum mismatch|Mirror sync in progress|"
                         r"Clearsigned file isn't valid")
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


@dataclass(frozen=True)
class DebPackage:
    """One binary package, exactly: what the lock records and the cache checks."""

    name: str
    version: str
    arch: str
    filename: str   # path in the archive (pool/...)
    sha256: str
    size: int

    @property
    def deb_name(self) -> str:
        return os.path.basename(self.filename)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> DebPackage:
        return cls(**d)


def parse_simulated_installs(text: str) -> list[tuple[str, str, str]]:
    """(name, version, arch) from `apt-get install --simulate` output ("Inst n (v suite [a])")."""
    out = []
    for m in re.finditer(r"^Inst (\S+) (?:\[[^\]]*\] )?\((\S+) .*?\[(\S+)\]\)", text, re.M):
        name = m.group(1).split(":")[0]
        out.append((name, m.group(2), m.group(3)))
    return out


def parse_stanzas(text: str) -> list[dict[str, str]]:
    """Deb822 stanzas (apt-cache show) as dicts; continuation lines are folded in."""
    stanzas: list[dict[str, str]] = []
    cur: dict[str, str] = {}
    key: str | None = None
    for line in text.splitlines():
        if not line.strip():
            if cur:
                stanzas.append(cur)
            cur, key = {}, None
        elif line[0] in " \t" and key:
            cur[key] += "\n" + line.strip()
        elif ":" in line:
            key, _, val = line.partition(":")
            cur[key] = val.strip()
    if cur:
        stanzas.append(cur)
    return stanzas


def first_dependency(depends: str) -> str:
    """The package name of the first alternative of the first item of a Depends field."""
    return depends.split(",")[0].split("|")[0].split("(")[0].strip().split(":")[0]


class AptContext:
    """A private apt for one (architecture, suites) pair, rooted in a cache directory."""

    def __init__(self, root: Path, arch: str, suites: tuple[str, ...],
                 mirror: str | None = None, progress: Progress | None = None):
        self.root = root
        self.arch = arch
        self.suites = suites
        self.mirror = mirror or os.environ.get("RIG_DEBIAN_MIRROR", DEFAULT_MIRROR)
        self.progress = progress or Progress()
        self._lay_out()

    def _lay_out(self) -> None:
        for d in ("etc/apt/apt.conf.d", "etc/apt/preferences.d", "etc/apt/trusted.gpg.d",
                  "var/lib/apt/lists/partial", "var/cache/apt/archives/partial", "var/lib/dpkg"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        (self.root / "var/lib/dpkg/status").touch()
        lines = [f"deb [signed-by={KEYRING}] {self.mirror} {s} main" for s in self.suites]
        (self.root / "etc/apt/sources.list").write_text("\n".join(lines) + "\n")

    def _options(self) -> list[str]:
        opts = {
            "Dir": str(self.root),
            "Dir::State::status": str(self.root / "var/lib/dpkg/status"),
            "APT::Architecture": self.arch,
            "APT::Architectures::": self.arch,
            "Debug::NoLocking": "1",
            "Acquire::Languages": "none",
            "APT::Install-Recommends": "false",
            "APT::Sandbox::User": "root" if os.geteuid() == 0 else "",
        }
        out = []
        for k, v in opts.items():
            if v:
                out += ["-o", f"{k}={v}"]
        return out

    def _run(self, tool: str, args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
        cmd = [tool, *self._options(), *args]
        env = dict(os.environ, LC_ALL="C.UTF-8", DEBIAN_FRONTEND="noninteractive")
        return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=timeouts.APT_COMMAND_S)

    def update(self) -> None:
        """Fetch the indices. A mirror caught mid-sync (size or hash mismatch) is retried
        with a back-off; anything else (no network, refused) fails at once."""
        where = f"{self.arch} {' '.join(self.suites)}"
        self.progress.step(f"apt indices for {where}")
        for attempt in range(1, len(timeouts.APT_RETRY_DELAYS_S) + 2):
            r = self._run("apt-get", ["update"])
            failed = [ln for ln in r.stderr.splitlines() if ln.startswith(("E:", "W: Failed", "Err:"))]
            if r.returncode == 0 and not failed:
                return
            msg = (failed or r.stderr.strip().splitlines() or ["apt-get update failed"])[-1].strip()
            if attempt > len(timeouts.APT_RETRY_DELAYS_S) or not MIRROR_SYNC.search(r.stderr):
                raise UserError(f"cannot fetch the Debian package index ({self.mirror}, {where}):"
                                f" {msg}; check the network or set RIG_DEBIAN_MIRROR")
            delay = timeouts.APT_RETRY_DELAYS_S[attempt - 1]
            self.progress.note(f"index fetch failed ({msg}), mirror mid-sync? retrying in {delay:.0f} s")
            time.sleep(delay)  # back-off between network retries, not synchronisation

    def has_lists(self) -> bool:
        return any((self.root / "var/lib/apt/lists").glob("*_Packages*"))

    def closure(self, roots: list[str], release: str | None) -> list[tuple[str, str, str]]:
        """Every package apt would install for `roots` on an empty system (no Recommends)."""
        args = ["install", "--simulate", "-q"]
        if release:
            args += ["-t", release]
        r = self._run("apt-get", args + roots)
        if r.returncode != 0:
            raise UserError(f"cannot resolve Debian packages {' '.join(roots)} for {self.arch}: "
                            f"{_last_error(r.stderr)}")
        return parse_simulated_installs(r.stdout)

    def candidate_depends(self, package: str, release: str | None) -> str:
        """What a metapackage (linux-image-amd64) points at in `release`: the real package."""
        stanzas = self.show_candidates(package)
        if release:
            stanzas = [s for s in stanzas if self._in_release(s, release)] or stanzas
        if not stanzas:
            raise UserError(f"Debian package {package} not found for {self.arch}")
        best = max(stanzas, key=lambda s: _VersionKey(s["Version"]))
        return first_dependency(best.get("Depends", ""))

    def show_candidates(self, package: str) -> list[dict[str, str]]:
        r = self._run("apt-cache", ["show", f"{package}:{self.arch}"])
        if r.returncode != 0:
            raise UserError(f"Debian package {package} not found for {self.arch}: "
                            f"{_last_error(r.stderr)}")
        return parse_stanzas(r.stdout)

    def _in_release(self, stanza: dict[str, str], release: str) -> bool:
        # apt-cache show does not print the suite; backports versions carry ~bpoNN.
        return ("bpo" in stanza["Version"]) == release.endswith("-backports")

    def describe(self, pins: list[tuple[str, str, str]]) -> list[DebPackage]:
        """Exact archive facts (file, sha256, size) for (name, version, arch) triples."""
        args = ["show", *[f"{n}:{a}={v}" for n, v, a in pins]]
        r = self._run("apt-cache", args)
        if r.returncode != 0:
            raise UserError(f"pinned packages are no longer in the archive: {_last_error(r.stderr)}"
                            "; re-resolve with --refresh")
        seen: dict[tuple[str, str], DebPackage] = {}
        for s in parse_stanzas(r.stdout):
            key = (s["Package"], s["Version"])
            seen.setdefault(key, DebPackage(s["Package"], s["Version"], s["Architecture"],
                                            s["Filename"], s["SHA256"], int(s["Size"])))
        return [seen[(n, v)] for n, v, _ in pins]

    def download(self, packages: list[DebPackage], dest: Path) -> list[Path]:
        """Each package's .deb in `dest`; present and intact files are not fetched again."""
        dest.mkdir(parents=True, exist_ok=True)
        missing = [p for p in packages if not deb_ok(dest / p.deb_name, p)]
        if missing:
            self._fetch(missing, dest)
        return [dest / p.deb_name for p in packages]

    def _fetch(self, missing: list[DebPackage], dest: Path) -> None:
        """One apt-get download for all: apt checks each file against the signed index."""
        total = sum(p.size for p in missing)
        self.progress.step(f"downloading {len(missing)} {self.arch} packages, {total / 1e6:.1f} MB")
        tmp = dest / f".partial-{os.getpid()}"
        tmp.mkdir(exist_ok=True)
        try:
            self._apt_download(missing, tmp, total)
            for p in missing:
                got = list(tmp.glob(f"{p.name}_*.deb"))
                if len(got) != 1 or sha256_file(got[0]) != p.sha256:
                    raise UserError(f"cannot download Debian package {p.name} {p.version} "
                                    f"({self.arch}) from {self.mirror}: file missing or damaged")
                os.replace(got[0], dest / p.deb_name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _apt_download(self, missing: list[DebPackage], cwd: Path, total: int) -> None:
        sizes = {p.name: p.size for p in missing}
        cmd = ["apt-get", *self._options(), "download",
               *[f"{p.name}:{p.arch}={p.version}" for p in missing]]
        env = dict(os.environ, LC_ALL="C.UTF-8")
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stderr is not None    # both PIPE
        done = 0
        for line in proc.stdout:  # "Get:3 http://... bookworm/main amd64 name amd64 1.2 [34 kB]"
            fields = line.split()
            if fields and fields[0].startswith("Get:") and len(fields) >= 6:
                done += sizes.get(fields[4], 0)
                self.progress.fraction(done, total, fields[4])
        err = proc.stderr.read()
        if proc.wait() != 0:
            failed = re.search(r"Failed to fetch \S*/([^/_\s]+)_", err)
            what = f"package {failed.group(1)}" if failed else "packages"
            raise UserError(f"cannot download Debian {what} ({self.arch}) from {self.mirror}: "
                            f"{_last_error(err)}; check the network or set RIG_DEBIAN_MIRROR")


def deb_ok(path: Path, pkg: DebPackage) -> bool:
    return path.exists() and path.stat().st_size == pkg.size and sha256_file(path) == pkg.sha256


def _last_error(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    errs = [ln for ln in lines if ln.startswith("E:")] or lines
    return errs[-1] if errs else "unknown error"


class _VersionKey:
    """Debian version ordering via dpkg --compare-versions (only used on a few candidates)."""

    def __init__(self, v: str):
        self.v = v

    def __lt__(self, other: _VersionKey) -> bool:
        return subprocess.run(["dpkg", "--compare-versions", self.v, "lt", other.v]).returncode == 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _VersionKey) and self.v == other.v


def extract(debs: list[Path], dest: Path) -> None:
    """Unpack .debs into dest without running any of their code (foreign arch is fine)."""
    dest.mkdir(parents=True, exist_ok=True)
    for deb in debs:
        r = subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], capture_output=True, text=True,
                       timeout=timeouts.BUILD_S)
        if r.returncode != 0:
            raise InfraError(f"cannot unpack {deb.name}: {r.stderr.strip()}")

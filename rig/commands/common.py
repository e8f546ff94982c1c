"""What the commands share: the session made from the global options, the arch list."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from rig.core.targets import PROFILES, TargetProfile, profile


def session(args: argparse.Namespace, qemu: Path | None = None) -> Session:
    from rig.chain.session import Session  # the chain's modules load when a command runs
    return Session(Path(args.cache_dir) if args.cache_dir else None, refresh=args.refresh,
                   quiet=args.quiet, qemu=qemu)


def arches(value: str) -> list[TargetProfile]:
    return list(PROFILES.values()) if value == "all" else [profile(value)]


def optional_path(value: str | None) -> Path | None:
    return Path(value) if value else None


# argparse subparsers: what add_parser() receives (argparse has no public name for it; the
# class is generic only to the type checker).
if TYPE_CHECKING:
    from rig.chain.session import Session

    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]
else:
    Subparsers = argparse._SubParsersAction

"""`rig cache prune`: what the cache holds that can grow without end (snapshots of booted
guests, rig.guests.snapshot), trimmed to its limit or removed."""

from __future__ import annotations

import argparse

from rig.commands.common import Subparsers, session


def add_parser(sub: Subparsers) -> None:
    ca = sub.add_parser("cache", help="look after the rig's cache")
    csub = ca.add_subparsers(dest="cache_command", required=True, parser_class=type(ca))
    pr = csub.add_parser("prune", help="remove the least recently used guest snapshots beyond the limit "
                                       "(--all: every one)")
    pr.add_argument("--all", action="store_true", help="remove every snapshot")
    pr.set_defaults(handler=cmd_prune)


def cmd_prune(args: argparse.Namespace) -> int:
    from rig.guests.snapshot import SnapshotStore
    store = SnapshotStore(session(args).cache)
    removed, freed = store.prune(limit=0 if args.all else None)
    kept = store.entries()
    print(f"removed {removed} snapshot(s), {freed / 2**20:.0f} MiB; {len(kept)} kept, "
          f"{sum(size for _, size, _ in kept) / 2**20:.0f} MiB of at most {store.limit / 2**20:.0f} MiB "
          f"({store.root})")
    return 0

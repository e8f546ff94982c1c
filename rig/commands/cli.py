"""The `rig` command: parse, validate, dispatch; map failures onto exit statuses.

Exit status: 0 success; 2 bad input or an unusable host (one line `rig: error: ...`, no
traceback; 125 with --bisect, so `git bisect run` skips the commit); 125 the machinery
failed (ERROR: a guest that did not boot, a QEMU that died); 130 interrupted. The
subcommands' own statuses (rig run: 1 STALL; rig matrix: 1 disagreement) are theirs.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from typing import NoReturn

from rig import __version__
from rig.commands import boot, cache, doctor, finding, finding_powernv, hold_client, kernel, matrix, rerun, run, setup
from rig.core import logs
from rig.core.errors import InfraError, RigError, UserError
from rig.host import signals
from rig.host.rundir import reap_stale

log = logging.getLogger(__name__)


class UsageError(UserError):
    """argparse's complaint about the command line."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line `rig: error: ...` like every other bad input."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog.removeprefix('rig ')}: {message}; see `{self.prog} --help`")


def parser() -> Parser:
    p = Parser(prog="rig", description="Finds INTx interrupt stalls in Linux VFIO passthrough of "
                                        "legacy PCI devices, under QEMU")
    p.add_argument("--version", action="version", version=f"intx-rig {__version__}")
    p.add_argument("--cache-dir", help="cache directory (default $XDG_CACHE_HOME/intx-rig)")
    p.add_argument("--refresh", action="store_true",
                   help="resolve Debian package versions again instead of using the recorded lock")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.add_argument("--debug", action="store_true", help="every log record on stderr too (rig.log has them)")
    p.add_argument("--bisect", action="store_true",
                   help="for `git bisect run`: bad input exits 125 (skip this commit), not 2")
    sub = p.add_subparsers(dest="subcommand", required=True, parser_class=Parser)
    for module in (doctor, setup, boot, finding, finding_powernv, kernel, matrix, run, rerun, hold_client, cache):
        module.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    bisect = "--bisect" in (sys.argv[1:] if argv is None else argv)
    try:
        args = parser().parse_args(argv)
    except SystemExit as e:     # --help, --version
        return int(e.code or 0)
    except UserError as e:
        print(f"rig: error: {e}", file=sys.stderr)
        return 125 if bisect else e.exit_status
    args.argv = list(sys.argv[1:] if argv is None else argv)     # rig run --detach runs it again
    logs.configure(debug=args.debug)
    signals.install()
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        reap_stale()
        return handler(args)
    except UserError as e:
        print(f"rig: error: {e}", file=sys.stderr)
        return 125 if args.bisect else e.exit_status
    except InfraError as e:
        log.error("%s", e, exc_info=True)
        print(f"rig: ERROR: {e}", file=sys.stderr)
        return e.exit_status
    except RigError as e:
        print(f"rig: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        signals.unwound()
        print("rig: interrupted; cleaned up", file=sys.stderr)
        return 130
    except BrokenPipeError:     # `rig monitor ... | head`: the reader had enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as e:  # noqa: BLE001 - the machinery failing in a way nobody foresaw
        log.critical("unexpected %s", type(e).__name__, exc_info=True)
        print(f"rig: ERROR: unexpected {type(e).__name__}: {e} (a bug in the rig: run again with "
              "--debug for its traceback, and report it)", file=sys.stderr)
        return InfraError.exit_status


if __name__ == "__main__":
    sys.exit(main())

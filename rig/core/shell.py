"""Shell scripts that run inside guests live as `.sh` files beside the code that runs them
(`<package>/sh/*.sh`), so shellcheck checks them (unit tier) and they read as shell.

A script gets its arguments the way a script file would: `set -- ARGS` before its text,
sent as one command over SSH.
"""

from __future__ import annotations

import shlex
from importlib import resources


def script_text(package: str, name: str) -> str:
    return resources.files(package).joinpath("sh", name).read_text()


def guest_script(package: str, name: str, *args: str) -> str:
    """The script `<package>/sh/<name>` as one command with its positional arguments."""
    return f"set -- {' '.join(shlex.quote(a) for a in args)}\n{script_text(package, name)}"

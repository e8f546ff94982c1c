"""The two kinds of failure the rig tells apart.

UserError is bad input or an unusable host (exit status 2, one line, no traceback).
InfraError is the machinery failing (a guest that never booted, a QEMU that died):
it becomes an ERROR verdict with the reason, never a STALL.
"""


class RigError(Exception):
    """Base of the rig's own errors; str(e) is the one line shown to the user."""


class UserError(RigError):
    """Bad input or host set-up: the user can fix it. Exit status 2."""

    exit_status = 2


class SpecError(UserError):
    """A value of a spec that cannot be (rig.core.spec). `option` is the field as the CLI
    spells it, the first word of the message; another front end (the pytest plugin) says
    the same with its own spelling (spelled_as)."""

    def __init__(self, option: str, message: str):
        super().__init__(message)
        self.option = option

    def spelled_as(self, spelling: dict[str, str]) -> str:
        text = str(self)
        mine = spelling.get(self.option)
        return text.replace(self.option, mine, 1) if mine else text


class InfraError(RigError):
    """The machinery failed (boot, SSH, QMP, download). An ERROR verdict, never a STALL."""

    exit_status = 125


class QemuError(InfraError):
    """A QEMU process of the rig's failed. The message is the one line; the command line and
    the last lines of QEMU's own output come with it, for the log and for whoever catches it."""

    def __init__(self, message: str, argv: list[str] | None = None, log_tail: str = ""):
        super().__init__(message)
        self.argv = argv or []
        self.log_tail = log_tail


class LaunchFailed(QemuError):
    """QEMU did not start: it exited at once, or never connected to its monitor."""


class GuestDied(QemuError):
    """A QEMU that ran has exited, or its guest stopped for good (panic, internal error)."""


class QmpTimeout(QemuError):
    """A QMP command had no answer in time: the QEMU is wedged."""

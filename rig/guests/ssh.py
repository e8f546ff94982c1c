"""SSH into a guest with paramiko, authenticating the guest by the host key baked into
its image (no trust on first use). A deeper guest is reached by jumping: a direct-tcpip
channel through the outer guest's connection is the socket of the inner one."""

from __future__ import annotations

import base64
import logging
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass

import paramiko

from rig.core import timeouts
from rig.core.errors import InfraError
from rig.host.keys import KeySet

# paramiko logs a traceback for every refused attempt while a guest's sshd comes up; the
# rig reports the final failure itself.
logging.getLogger("paramiko").addHandler(logging.NullHandler())
logging.getLogger("paramiko").propagate = False
log = logging.getLogger(__name__)


@dataclass
class CommandResult:
    status: int
    stdout: str
    stderr: str


class GuestSSH:
    def __init__(self, name: str, keys: KeySet):
        self.name = name
        self.keys = keys
        self.client: paramiko.SSHClient | None = None

    def _new_client(self, host: str, port: int) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        blob = base64.b64decode(self.keys.host_public.split()[1])
        name = host if port == 22 else f"[{host}]:{port}"
        client.get_host_keys().add(name, "ssh-ed25519", paramiko.Ed25519Key(data=blob))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        return client

    def connect(self, host: str, port: int, timeout: float, sock=None,
                alive: Callable[[], None] | None = None) -> float:
        """Connect, retrying while the guest's sshd comes up; returns seconds it took.
        alive() raises if the guest is gone, so a dead guest fails at once, not at timeout."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        last = None
        while time.monotonic() < deadline:
            if alive:
                alive()
            client = self._new_client(host, port)
            # paramiko's timeout also bounds the key exchange, and when it runs out it does not
            # fail: the next step says "No existing session". Under TCG inside TCG the key
            # exchange with L2's dropbear took more than 10 s, and every retry left dropbear
            # one more half-done exchange to compute. A refused connection fails at once anyway.
            attempt = max(timeouts.SSH_ATTEMPT_MIN_S, min(timeouts.SSH_ATTEMPT_MAX_S, deadline - time.monotonic()))
            try:
                client.connect(host, port, username="root", key_filename=str(self.keys.client_private),
                               look_for_keys=False, allow_agent=False, timeout=attempt,
                               banner_timeout=attempt, auth_timeout=attempt,
                               sock=sock() if callable(sock) else sock)
                self.client = client
                took = time.monotonic() - t0
                log.info("%s: SSH up after %.1f s", self.name, took)
                return took
            except (paramiko.SSHException, OSError, EOFError) as e:
                log.debug("%s: SSH attempt failed: %s", self.name, e)
                last = e
                client.close()
                # Connection refused/reset until dropbear listens: retry at a steady pace.
                time.sleep(timeouts.SSH_RETRY_GAP_S)  # pacing retries, not synchronisation
        raise InfraError(f"{self.name}: SSH did not come up within {timeout:.0f} s ({last})")

    def run(self, command: str, timeout: float = timeouts.SSH_COMMAND_S, check: bool = False) -> CommandResult:
        if not self.client:
            raise InfraError(f"{self.name}: SSH is not connected")
        shown = command.splitlines()[0][:120] if command.strip() else command
        log.debug("%s: $ %s", self.name, shown)
        t0 = time.monotonic()
        try:
            # The output is read first (each read bounded by `timeout`: the channel's), so a
            # command that prints a lot never blocks on a full window; then its status, bounded.
            _, out, err = self.client.exec_command(command, timeout=timeout)
            stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
            if not out.channel.status_event.wait(timeout):
                raise TimeoutError(f"no exit status within {timeout:.0f} s")
            result = CommandResult(out.channel.recv_exit_status(), stdout, stderr)
        except (TimeoutError, paramiko.SSHException, OSError) as e:
            raise InfraError(f"{self.name}: SSH command {shown!r} failed: {e}") from e
        log.debug("%s: exit %d after %.2f s", self.name, result.status, time.monotonic() - t0)
        if check and result.status != 0:
            raise InfraError(f"{self.name}: {command!r} exited {result.status}: "
                             f"{(result.stderr or result.stdout).strip()[-300:]}")
        return result

    def put(self, data: bytes, path: str, timeout: float = timeouts.SSH_COMMAND_S) -> None:
        """Write data to a file in the guest: `cat` over a channel (dropbear has no SFTP)."""
        try:
            chan = self.open_session()
            chan.settimeout(timeout)
            chan.exec_command(f"cat > {shlex.quote(path)}")
            chan.sendall(data)
            chan.shutdown_write()
            if not chan.status_event.wait(timeout):
                raise TimeoutError(f"no exit status within {timeout:.0f} s")
            status = chan.recv_exit_status()
        except (TimeoutError, paramiko.SSHException, OSError) as e:
            raise InfraError(f"{self.name}: writing {path} failed: {e}") from e
        if status != 0:
            raise InfraError(f"{self.name}: writing {path} failed (cat exited {status})")

    def _transport(self) -> paramiko.Transport:
        transport = self.client.get_transport() if self.client else None
        if transport is None:
            raise InfraError(f"{self.name}: SSH is not connected")
        return transport

    def jump_channel(self, host: str, port: int) -> paramiko.Channel:
        """A socket-like channel to host:port as seen from this guest (for the next layer)."""
        return self._transport().open_channel("direct-tcpip", (host, port), ("127.0.0.1", 0))

    def open_session(self) -> paramiko.Channel:
        """A channel for one long-running command whose output is read as it comes."""
        return self._transport().open_session()

    def close(self) -> None:
        if self.client:
            self.client.close()
            self.client = None

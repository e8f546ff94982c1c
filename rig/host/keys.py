"""SSH keys, generated once per cache: a client key and a guest host key.

Never committed: they live in the cache and go into the images built there. The host key
is written in dropbear's own format (the guests run dropbear) and its public half is what
the rig's SSH client expects, so a guest is authenticated, not trusted on first use.
"""

from __future__ import annotations

import base64
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def _ssh_string(b: bytes) -> bytes:
    return struct.pack(">I", len(b)) + b


def _raw(key: Ed25519PrivateKey) -> tuple[bytes, bytes]:
    priv = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())
    pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return priv, pub


def dropbear_private_key(key: Ed25519PrivateKey) -> bytes:
    """Dropbear's ed25519 key file: string "ssh-ed25519", string (seed || public key)."""
    priv, pub = _raw(key)
    return _ssh_string(b"ssh-ed25519") + _ssh_string(priv + pub)


def openssh_public_line(key: Ed25519PrivateKey, comment: str) -> str:
    _, pub = _raw(key)
    blob = _ssh_string(b"ssh-ed25519") + _ssh_string(pub)
    return f"ssh-ed25519 {base64.b64encode(blob).decode()} {comment}"


@dataclass(frozen=True)
class KeySet:
    client_private: Path     # OpenSSH format, for paramiko
    client_public: str       # authorized_keys line
    host_private: bytes      # dropbear format, goes into the guests
    host_public: str         # "ssh-ed25519 AAAA..." the client expects

    def fingerprint(self) -> str:
        return self.host_public.split()[1][-16:] + self.client_public.split()[1][-16:]


def load_or_create(directory: Path) -> KeySet:
    directory.mkdir(parents=True, exist_ok=True)
    client_path = directory / "client_ed25519"
    host_path = directory / "host_ed25519.pem"
    if not client_path.exists():
        _write_private(client_path, Ed25519PrivateKey.generate())
    if not host_path.exists():
        _write_private(host_path, Ed25519PrivateKey.generate())
    client = _read_private(client_path)
    host = _read_private(host_path)
    return KeySet(client_path, openssh_public_line(client, "intx-rig-client"),
                  dropbear_private_key(host), openssh_public_line(host, "intx-rig-guest"))


def _write_private(path: Path, key: Ed25519PrivateKey) -> None:
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                             serialization.NoEncryption())
    tmp = path.with_name(path.name + f".{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    try:
        os.link(tmp, path)      # the first writer wins; a racing rig reads the winner's key
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)


def _read_private(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_ssh_private_key(path.read_bytes(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return key

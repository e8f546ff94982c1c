import base64
import struct

import paramiko
import pytest

from rig.host.keys import load_or_create

pytestmark = pytest.mark.unit


def _strings(blob: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(blob):
        (n,) = struct.unpack(">I", blob[pos:pos + 4])
        out.append(blob[pos + 4:pos + 4 + n])
        pos += 4 + n
    return out


def test_keys_are_created_once_per_cache(tmp_path):
    a = load_or_create(tmp_path)
    b = load_or_create(tmp_path)
    assert a == b
    assert (tmp_path / "client_ed25519").stat().st_mode & 0o077 == 0
    other = load_or_create(tmp_path / "other")
    assert other.host_public != a.host_public and other.client_public != a.client_public


def test_dropbear_host_key_matches_the_public_key_the_client_expects(tmp_path):
    keys = load_or_create(tmp_path)
    kind, secret = _strings(keys.host_private)
    assert kind == b"ssh-ed25519" and len(secret) == 64
    pub_kind, pub = _strings(base64.b64decode(keys.host_public.split()[1]))
    assert pub_kind == b"ssh-ed25519" and secret[32:] == pub


def test_client_key_loads_in_paramiko(tmp_path):
    keys = load_or_create(tmp_path)
    k = paramiko.Ed25519Key.from_private_key_file(str(keys.client_private))
    assert keys.client_public.split()[1] == k.get_base64()

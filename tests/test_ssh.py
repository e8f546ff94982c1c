"""GuestSSH.connect against a guest whose sshd is slow at the key exchange (L2's dropbear
under TCG inside TCG): a local paramiko server that holds its KEXINIT back for 12 s."""

import socket
import threading
import time

import paramiko
import pytest

from rig.guests.ssh import GuestSSH
from rig.host.keys import load_or_create

pytestmark = pytest.mark.unit

KEX_DELAY = 12.0   # longer than the 10 s paramiko was once given for the whole negotiation


class SlowToNegotiate:
    """The server's socket: its second send (the KEXINIT, after the banner) waits."""

    def __init__(self, sock):
        self._sock, self._sends = sock, 0

    def send(self, data):
        self._sends += 1
        if self._sends == 2:
            time.sleep(KEX_DELAY)   # the slow guest, on the server's side of the socket
        return self._sock.send(data)

    def __getattr__(self, name):
        return getattr(self._sock, name)


class AcceptRigKey(paramiko.ServerInterface):
    def __init__(self, client_public: str):
        self.blob = client_public.split()[1]

    def get_allowed_auths(self, username):
        return "publickey"

    def check_auth_publickey(self, username, key):
        ok = username == "root" and key.get_base64() == self.blob
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED


@pytest.fixture
def slow_sshd(tmp_path):
    keys = load_or_create(tmp_path / "keys")
    host_key = paramiko.Ed25519Key.from_private_key_file(str(tmp_path / "keys/host_ed25519.pem"))
    listener = socket.create_server(("127.0.0.1", 0))
    transports = []

    def serve():
        conn, _ = listener.accept()
        t = paramiko.Transport(SlowToNegotiate(conn))
        t.add_server_key(host_key)
        transports.append(t)
        t.start_server(server=AcceptRigKey(keys.client_public))

    threading.Thread(target=serve, daemon=True).start()
    yield keys, listener.getsockname()[1]
    for t in transports:
        t.close()
    listener.close()


def test_a_slow_key_exchange_is_waited_for_not_retried(slow_sshd):
    keys, port = slow_sshd
    ssh = GuestSSH("l2", keys)
    try:
        took = ssh.connect("127.0.0.1", port, timeout=60)
        assert took >= KEX_DELAY and ssh.client.get_transport().is_authenticated()
    finally:
        ssh.close()

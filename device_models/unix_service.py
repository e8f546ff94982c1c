"""A UNIX-socket listener with an accept thread: the shape both the vfio-user server and
the control channel have. Subclasses implement serve(sock)."""

from __future__ import annotations

import os
import socket
import threading


class UnixService:
    concurrent = False   # True: each client in its own thread; False: one after the other

    def __init__(self, path: str, name: str):
        self.path = path
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(2)
        self._thread = threading.Thread(target=self._accept_loop, name=name, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def _accept_loop(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return  # closed
            if self.concurrent:
                threading.Thread(target=self.serve, args=(sock,), daemon=True).start()
            else:
                self.serve(sock)

    def serve(self, sock: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.listener.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass

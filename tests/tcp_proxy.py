"""A TCP proxy on loopback that can make a real server hang or flap, for fault tests.

Clients connect to the proxy's port; it forwards every byte both ways to the real server (the
S3-compatible server in the object-store tests). Modes:

- ``pass``: forward.
- ``hang``: stop forwarding on every connection, old and new (bytes are held, nothing is
  answered: requests time out), until the mode changes back.
- ``flap``: of every three new connections, close one at once, cut one after its first bytes
  (mid-request) and let one through: the client sees resets and retries.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
from typing import Literal

Mode = Literal["pass", "hang", "flap"]


class TcpProxy:
    def __init__(self, target_port: int, *, host: str = "127.0.0.1") -> None:
        self.target = (host, target_port)
        self._listener = socket.create_server((host, 0))
        self.port = self._listener.getsockname()[1]
        self.mode: Mode = "pass"
        self._open = threading.Event()  # set while forwarding is allowed
        self._open.set()
        self._stop = threading.Event()
        self._count = itertools.count()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_mode(self, mode: Mode) -> None:
        self.mode = mode
        if mode == "hang":
            self._open.clear()
        else:
            self._open.set()

    def close(self) -> None:
        self._stop.set()
        self._open.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            fate = next(self._count) % 3 if self.mode == "flap" else 2
            if fate == 0:
                client.close()  # refused at once
                continue
            threading.Thread(target=self._serve, args=(client, fate == 1), daemon=True).start()

    def _serve(self, client: socket.socket, flaky: bool) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=10)
        except OSError:
            client.close()
            return
        pair = [client, upstream]
        for source, sink in ((client, upstream), (upstream, client)):
            threading.Thread(
                target=self._pump, args=(source, sink, pair, flaky), daemon=True
            ).start()

    def _pump(
        self, source: socket.socket, sink: socket.socket, pair: list[socket.socket], flaky: bool
    ) -> None:
        try:
            while not self._stop.is_set():
                data = source.recv(65536)
                if not data:
                    break
                while not self._open.wait(0.1):  # hang: hold the bytes
                    if self._stop.is_set():
                        return
                if flaky and self.mode == "flap":
                    break  # cut the connection mid-request
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in pair:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

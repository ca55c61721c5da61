"""The threading HTTP server under `MockServer`: it accepts connections until
told to stop, without polling, and tracks the open ones so that stopping
closes them all."""

from __future__ import annotations

import contextlib
import http.server
import selectors
import socket
import socketserver
import sys
import threading
from typing import TYPE_CHECKING, Any

from mal.testing._handler import _Handler, _shutdown

if TYPE_CHECKING:
    from mal.testing._server import MockServer


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], mock: MockServer) -> None:
        self.mock = mock
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._open: dict[socket.socket, threading.Thread] = {}
        self._wake_r, self._wake_w = socket.socketpair()
        try:
            super().__init__(address, _Handler)
        except BaseException:
            self._wake_r.close()
            self._wake_w.close()
            raise

    def serve(self) -> None:
        """Accept connections until `wake` is called after `stopping` is set.

        Unlike `serve_forever`, this does not poll, so stopping is immediate.
        """
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self.stopping.is_set():
                for key, _ in selector.select():
                    if key.fileobj is self.socket and not self.stopping.is_set():
                        self._accept()

    def _accept(self) -> None:
        try:
            request, address = self.get_request()
        except OSError:
            return
        try:
            self.process_request(request, address)
        except Exception:
            self.handle_error(request, address)
            self.shutdown_request(request)

    def wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def server_close(self) -> None:
        super().server_close()
        self._wake_r.close()
        self._wake_w.close()

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls getfqdn(), which can be slow; skip it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.socket.getsockname()[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)

    def track(self, sock: socket.socket) -> None:
        with self._lock:
            if self.stopping.is_set():
                _shutdown(sock)
            self._open[sock] = threading.current_thread()
        self.mock._connected()

    def untrack(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.pop(sock, None)

    def close_connections(self) -> list[threading.Thread]:
        with self._lock:
            self.stopping.set()
            items = list(self._open.items())
        for sock, _ in items:
            _shutdown(sock)
        return [thread for _, thread in items]

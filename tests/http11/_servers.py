"""Raw socket servers on 127.0.0.1 for the transport tests: each connection is
handed to a script (a function of the socket) in a thread of its own, so a
test says byte by byte what the server sends, when it stalls and when it
closes."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

Handler = Callable[["Peer"], None]


class Peer:
    """One accepted connection, as the script sees it."""

    def __init__(self, sock: socket.socket, server: RawServer) -> None:
        self.sock = sock
        self.server = server
        self.buffer = b""

    def read_request(self) -> bytes | None:
        """One request (head and Content-Length body), or None at EOF."""
        while b"\r\n\r\n" not in self.buffer:
            data = self.recv()
            if not data:
                return None
            self.buffer += data
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            data = self.recv()
            if not data:
                return None
            rest += data
        self.buffer = rest[length:]
        request = head + b"\r\n\r\n" + rest[:length]
        self.server.requests.append(request)
        return request

    def recv(self) -> bytes:
        try:
            return self.sock.recv(65536)
        except OSError:
            return b""

    def send(self, data: bytes, *, bytewise: bool = False) -> None:
        if bytewise:
            for i in range(len(data)):
                self.sock.sendall(data[i : i + 1])
        else:
            self.sock.sendall(data)

    def wait_closed(self, timeout: float = 10) -> bool:
        """Whether the client closed (or shut down) the connection in time."""
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
                self.buffer += data
        except ConnectionResetError:
            return True
        except OSError:
            return False


class RawServer:
    """``with RawServer(script) as server``: ``server.url``, ``server.accepted``
    (connections so far), ``server.requests`` (every request read), and
    ``server.closed_by_client`` (connections the client closed while the
    script waited with :meth:`Peer.wait_closed`)."""

    def __init__(self, script: Handler, *, tls: ssl.SSLContext | None = None) -> None:
        self.script = script
        self.tls = tls
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port: int = self.listener.getsockname()[1]
        scheme = "https" if tls is not None else "http"
        host = "localhost" if tls is not None else "127.0.0.1"
        self.url = f"{scheme}://{host}:{self.port}"
        self.accepted = 0
        self.requests: list[bytes] = []
        self.errors: list[BaseException] = []
        self.info: dict[str, Any] = {}
        self._peers: list[socket.socket] = []
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> RawServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop = True
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        self._thread.join(5)
        self.listener.close()
        for sock in self._peers:
            with contextlib.suppress(OSError):
                sock.close()

    def _serve(self) -> None:
        while True:
            sock, _ = self.listener.accept()
            if self._stop:
                sock.close()
                return
            self.accepted += 1
            self._peers.append(sock)
            threading.Thread(target=self._run, args=(sock,), daemon=True).start()

    def _run(self, sock: socket.socket) -> None:
        try:
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_side=True)
                self._peers.append(sock)
                self.info["alpn"] = sock.selected_alpn_protocol()
            self.script(Peer(sock, self))
        except (ssl.SSLError, OSError) as exc:
            self.errors.append(exc)
        finally:
            with contextlib.suppress(OSError):
                sock.close()


def respond(body: bytes, *, chunked: bool = False, bytewise: bool = False) -> Handler:
    """A keep-alive server: each request gets ``body``, chunked (a chunk per
    byte when ``bytewise``) or with a Content-Length."""

    def script(peer: Peer) -> None:
        while peer.read_request() is not None:
            peer.send(response_bytes(body, chunked=chunked, bytewise=bytewise), bytewise=bytewise)

    return script


def response_bytes(body: bytes, *, chunked: bool = False, bytewise: bool = False) -> bytes:
    if not chunked:
        return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    size = 1 if bytewise else max(len(body), 1)
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    framed = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces)
    return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + framed + b"0\r\n\r\n"


def stall(seconds: float = 30) -> None:
    time.sleep(seconds)

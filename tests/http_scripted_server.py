"""A scriptable HTTP(S) server on 127.0.0.1 for tests that need a real socket.

Queue replies per ``(method, path)``: a status, headers and body, a delay before answering,
or a dropped connection. Every request received is recorded (method, path, query, headers,
body), including those whose reply is delayed or dropped. Use it as a context manager or
through the ``scripted_server`` fixture::

    with ScriptedServer() as server:
        server.script("GET", "/v1/persons", Reply(503), Reply.json({"data": []}))
        requests.get(f"{server.url}/v1/persons")
        assert server.count("GET", "/v1/persons") == 1
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

__all__ = [
    "DROP",
    "ReceivedRequest",
    "Reply",
    "ScriptedServer",
    "TlsFiles",
    "make_tls_files",
    "scripted_server",
    "unused_port",
]


@dataclass(frozen=True)
class Reply:
    """One scripted answer: status, headers, body, an optional delay, or a dropped connection."""

    status: int = 200
    body: bytes | str | Mapping[str, Any] | list[Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Reply:
        """Answer ``data`` as JSON."""
        return cls(
            status=status,
            body=json.dumps(data),
            headers={"Content-Type": "application/json", **(headers or {})},
        )

    def encoded(self) -> tuple[bytes, str | None]:
        """Return the body bytes and the content type they imply."""
        if self.body is None:
            return b"", None
        if isinstance(self.body, bytes):
            return self.body, "application/octet-stream"
        if isinstance(self.body, str):
            return self.body.encode(), "text/plain; charset=utf-8"
        return json.dumps(self.body).encode(), "application/json"


#: Close the connection without answering.
DROP = Reply(drop=True)


@dataclass(frozen=True)
class ReceivedRequest:
    """A request as the server saw it; header names are lower-cased."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    @property
    def target(self) -> str:
        """The path with its query string."""
        return f"{self.path}?{self.query}" if self.query else self.path

    @property
    def params(self) -> dict[str, list[str]]:
        """The query string parsed."""
        return parse_qs(self.query, keep_blank_values=True)

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real APIs do
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        received = ReceivedRequest(
            method=self.command,
            path=parts.path,
            query=parts.query,
            headers={key.lower(): value for key, value in self.headers.items()},
            body=self._read_body(),
        )
        reply = self.server.scripted.take(received)
        if reply.delay:
            time.sleep(reply.delay)
        if reply.drop:
            self.close_connection = True
            with suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        payload, content_type = reply.encoded()
        header_names = {name.lower() for name in reply.headers}
        try:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if content_type and "content-type" not in header_names:
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
        except OSError:
            # The client gave up (e.g. its read timeout fired during the delay).
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # do not wait for handlers still sleeping through a delay

    def __init__(self, scripted: ScriptedServer) -> None:
        self.scripted = scripted
        super().__init__(("127.0.0.1", 0), _Handler)


class ScriptedServer:
    """A threaded HTTP server on an ephemeral 127.0.0.1 port that answers from scripts.

    Args:
        tls: ``(certfile, keyfile)`` to serve HTTPS.
        default: the reply when a route's queue is empty and no ``always`` reply is set.
    """

    def __init__(
        self,
        *,
        tls: tuple[str | Path, str | Path] | None = None,
        default: Reply | None = None,
    ) -> None:
        self._tls = tls
        self.default = default or Reply(404, {"error": "no reply scripted"})
        self._lock = threading.Lock()
        self._queues: dict[tuple[str, str], deque[Reply]] = {}
        self._always: dict[tuple[str, str], Reply] = {}
        self._received: list[ReceivedRequest] = []
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port the server listens on."""
        if self._httpd is None:
            raise RuntimeError("server not started")
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:41234``."""
        scheme = "https" if self._tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self) -> ScriptedServer:
        """Start serving in a daemon thread."""
        httpd = _HTTPServer(self)
        if self._tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(self._tls[0]), str(self._tls[1]))
            httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
        self._httpd = httpd
        # A short poll interval keeps stop() (and so each test's teardown) fast.
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="scripted-http", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def script(self, method: str, path: str, *replies: Reply) -> None:
        """Queue replies for ``(method, path)``; they are used once each, in order."""
        with self._lock:
            self._queues.setdefault((method.upper(), path), deque()).extend(replies)

    def always(self, method: str, path: str, reply: Reply) -> None:
        """Answer ``(method, path)`` with ``reply`` whenever its queue is empty."""
        with self._lock:
            self._always[(method.upper(), path)] = reply

    def take(self, received: ReceivedRequest) -> Reply:
        """Record ``received`` and return the reply for it (called by the handler)."""
        key = (received.method, received.path)
        with self._lock:
            self._received.append(received)
            queue = self._queues.get(key)
            if queue:
                return queue.popleft()
            return self._always.get(key, self.default)

    def received(self, method: str | None = None, path: str | None = None) -> list[ReceivedRequest]:
        """Return the requests received so far, optionally only one method and/or path."""
        with self._lock:
            return [
                r
                for r in self._received
                if (method is None or r.method == method.upper()) and (path is None or r.path == path)
            ]

    def count(self, method: str | None = None, path: str | None = None) -> int:
        """Return how many requests were received, optionally for one method and/or path."""
        return len(self.received(method, path))

    def reset(self) -> None:
        """Forget scripts and received requests."""
        with self._lock:
            self._queues.clear()
            self._always.clear()
            self._received.clear()


@dataclass(frozen=True)
class TlsFiles:
    """PEM files for an HTTPS test server: the CA to trust, the server certificate and key."""

    ca: Path
    cert: Path
    key: Path


def make_tls_files(directory: Path, hostname: str = "127.0.0.1") -> TlsFiles:
    """Write a throwaway CA and a server certificate for ``hostname`` into ``directory``."""
    import trustme

    ca = trustme.CA()
    issued = ca.issue_cert(hostname)
    files = TlsFiles(ca=directory / "ca.pem", cert=directory / "server.pem", key=directory / "server.key")
    ca.cert_pem.write_to_path(str(files.ca))
    issued.cert_chain_pems[0].write_to_path(str(files.cert))
    for extra in issued.cert_chain_pems[1:]:
        extra.write_to_path(str(files.cert), append=True)
    issued.private_key_pem.write_to_path(str(files.key))
    return files


def unused_port() -> int:
    """Return a 127.0.0.1 port nothing listens on (connections to it are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def scripted_server() -> Iterator[ScriptedServer]:
    """A started :class:`ScriptedServer`, stopped after the test."""
    with ScriptedServer() as server:
        yield server

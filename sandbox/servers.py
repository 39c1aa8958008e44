"""Start registered services: uvicorn servers on background threads, or a service's own launcher."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from sandbox.protocol import DroppableHttpProtocol
from sandbox.spec import LOOPBACK, Endpoint, RunningServer, ServiceSpec
from sandbox.tls import SandboxCA

log = logging.getLogger(__name__)

START_TIMEOUT_S = 15.0


class UvicornThread:
    """One uvicorn server on a pre-bound loopback socket, run in a daemon thread."""

    def __init__(self, app: Any, sock: socket.socket, *, ssl_files: tuple[Path, Path] | None) -> None:
        self.port: int = sock.getsockname()[1]
        self._sock = sock
        config = uvicorn.Config(
            app,
            http=DroppableHttpProtocol,
            lifespan="on",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=1,
            ssl_certfile=str(ssl_files[0]) if ssl_files else None,
            ssl_keyfile=str(ssl_files[1]) if ssl_files else None,
        )
        # uvicorn installs no signal handlers off the main thread; the CLI's serve loop has its own.
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name=f"sandbox-uvicorn-{self.port}", daemon=True)
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # surfaced by start()
            self._error = exc
            log.exception("sandbox server on port %s crashed", self.port)

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self._server.serve(sockets=[self._sock])

    def start(self) -> UvicornThread:
        """Start serving and wait until uvicorn reports it is up."""
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"sandbox server on port {self.port} failed to start") from self._error
            if time.monotonic() > deadline:
                raise TimeoutError(f"sandbox server on port {self.port} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Ask uvicorn to exit and wait for its thread."""
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()
        # Sync endpoints ran on AnyIO worker threads of this loop: they are told to stop when
        # the loop ends, but exit a moment later. Wait for them, so a stopped sandbox leaves
        # no thread behind.
        loop = self._loop
        if loop is None:
            return
        for thread in threading.enumerate():
            if getattr(thread, "loop", None) is loop and thread is not threading.current_thread():
                thread.join(timeout=5)


def bind_loopback(port: int) -> socket.socket:
    """A listening-ready TCP socket on 127.0.0.1 (port 0 = ephemeral)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted sockets inherit this on Linux. Without it, a response written in two parts
    # (headers, body) waits for the client's delayed ACK: ~40 ms per keep-alive request.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((LOOPBACK, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(False)
    return sock


@dataclass
class StartedService:
    """A running service and where it listens."""

    spec: ServiceSpec
    endpoint: Endpoint
    server: RunningServer


def start_service(spec: ServiceSpec, port: int, data_dir: Path, ca: SandboxCA | None) -> StartedService:
    """Start one service on ``port`` (0 = ephemeral) and return its endpoint."""
    data_dir.mkdir(parents=True, exist_ok=True)
    if spec.launcher is not None:
        server = spec.launcher(LOOPBACK, port, data_dir)
        endpoint = Endpoint(service=spec.name, port=server.port, tls=spec.tls, data_dir=data_dir)
    else:
        assert spec.app_factory is not None
        sock = bind_loopback(port)
        endpoint = Endpoint(service=spec.name, port=sock.getsockname()[1], tls=spec.tls, data_dir=data_dir)
        ssl_files = None
        if spec.tls:
            assert endpoint.ca_path is not None
            cert = (ca or SandboxCA()).issue(spec.name, data_dir, endpoint.ca_path)
            ssl_files = (cert.cert_path, cert.key_path)
        try:
            app = spec.app_factory(endpoint)
            server = UvicornThread(app, sock, ssl_files=ssl_files).start()
        except BaseException:
            sock.close()
            raise
    if spec.after_start is not None:
        spec.after_start(endpoint)
    return StartedService(spec=spec, endpoint=endpoint, server=server)


def start_services(
    specs: Sequence[ServiceSpec], ports: Mapping[str, int], data_dir: Path
) -> list[StartedService]:
    """Start several services (stopping those already started if one fails)."""
    ca = SandboxCA() if any(spec.tls for spec in specs) else None
    started: list[StartedService] = []
    try:
        for spec in specs:
            started.append(start_service(spec, ports.get(spec.name, 0), data_dir, ca))
    except BaseException:
        stop_services(started)
        raise
    return started


def stop_services(started: Sequence[StartedService]) -> None:
    """Stop services in reverse start order."""
    for service in reversed(started):
        try:
            service.server.stop()
        except Exception:
            log.exception("stopping sandbox service %s failed", service.spec.name)

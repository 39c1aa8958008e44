"""What one emulated service declares: name, port, TLS, how to serve it, its Airflow connections."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Endpoint:
    """Where a started service listens and where it keeps its files."""

    service: str
    port: int
    tls: bool
    data_dir: Path
    host: str = LOOPBACK

    @property
    def url(self) -> str:
        """Base URL, e.g. ``https://127.0.0.1:8443``."""
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    @property
    def ca_path(self) -> Path | None:
        """The CA bundle clients must trust (TLS services only)."""
        return self.data_dir / f"{self.service}-ca.pem" if self.tls else None


class RunningServer(Protocol):
    """A started server: its bound port and a way to stop it."""

    port: int

    def stop(self) -> None:
        """Stop serving and release every thread and socket."""


ConnectionRenderer = Callable[[Endpoint], dict[str, dict[str, Any]]]
"""Returns ``{conn_id: connection JSON}`` for a started service."""

AppFactory = Callable[[Endpoint], Any]
"""Builds the service's ASGI app for a given endpoint."""

Launcher = Callable[[str, int, Path], RunningServer]
"""Starts a non-ASGI server (e.g. moto) as ``(host, port, data_dir)``; port 0 = ephemeral."""


@dataclass(frozen=True)
class ServiceSpec:
    """One registry entry.

    Exactly one of ``app_factory`` (an ASGI emulator served by uvicorn) or ``launcher`` (a
    server that binds its own socket, such as moto) is set.
    """

    name: str
    default_port: int
    tls: bool
    connections: ConnectionRenderer
    app_factory: AppFactory | None = None
    launcher: Launcher | None = None
    health_path: str = "/_sandbox/health"
    description: str = ""
    after_start: Callable[[Endpoint], None] | None = None

    def __post_init__(self) -> None:
        if (self.app_factory is None) == (self.launcher is None):
            raise ValueError(f"service {self.name}: set exactly one of app_factory or launcher")

    @property
    def env_port_var(self) -> str:
        """Environment variable that overrides the default port."""
        return f"CRM_SYNC_SANDBOX_PORT_{self.name.upper()}"

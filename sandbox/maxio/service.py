"""Registry entry of the Maxio Advanced Billing emulator and its Airflow connection."""

from __future__ import annotations

from typing import Any

from sandbox.emulator import build_emulator_app
from sandbox.maxio.routes import build_router, install_error_handler
from sandbox.maxio.store import DEFAULT_API_KEY, SUBDOMAIN, MaxioBackend
from sandbox.spec import Endpoint, ServiceSpec


def create_app(endpoint: Endpoint) -> Any:
    """The ASGI app: API routes, admin API, call counting and faults."""
    backend = MaxioBackend()
    return build_emulator_app(
        backend,
        [build_router(backend)],
        title="Maxio Advanced Billing sandbox",
        customize=install_error_handler,
    )


def connections(endpoint: Endpoint) -> dict[str, dict[str, Any]]:
    """``maxio_default``: host/port/schema point at the emulator; production sets only the subdomain."""
    return {
        "maxio_default": {
            "conn_type": "maxio",
            "host": endpoint.host,
            "port": endpoint.port,
            "schema": "https" if endpoint.tls else "http",
            "login": DEFAULT_API_KEY,
            "password": "x",
            "extra": {"subdomain": SUBDOMAIN},
        }
    }


SERVICE = ServiceSpec(
    name="maxio",
    default_port=8103,
    tls=False,
    connections=connections,
    app_factory=create_app,
    description="Maxio Advanced Billing: customers, components, price points, subscriptions",
)

"""Registry entry of the Maxio Core emulator and its Airflow connection."""

from __future__ import annotations

from typing import Any

from sandbox.emulator import build_emulator_app
from sandbox.maxio_core.routes import build_router, install_error_handler
from sandbox.maxio_core.store import DEFAULT_TOKEN, MaxioCoreBackend
from sandbox.spec import Endpoint, ServiceSpec


def create_app(endpoint: Endpoint) -> Any:
    """The ASGI app: API routes, admin API, call counting and faults."""
    backend = MaxioCoreBackend()
    return build_emulator_app(
        backend, [build_router(backend)], title="Maxio Core sandbox", customize=install_error_handler
    )


def connections(endpoint: Endpoint) -> dict[str, dict[str, Any]]:
    """``maxio_core_default``: the token is the password; production adds ``extra.account``."""
    return {
        "maxio_core_default": {
            "conn_type": "maxio_core",
            "host": endpoint.host,
            "port": endpoint.port,
            "schema": "https" if endpoint.tls else "http",
            "password": DEFAULT_TOKEN,
        }
    }


SERVICE = ServiceSpec(
    name="maxio_core",
    default_port=8104,
    tls=False,
    connections=connections,
    app_factory=create_app,
    description="Maxio Core (SaaSOptics): customers, registers, contracts; PATCH text_field2",
)

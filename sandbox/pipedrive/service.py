"""Registry entry of the Pipedrive emulator: app factory and the ``pipedrive_default`` connection."""

from __future__ import annotations

from typing import Any

from sandbox.emulator import build_emulator_app
from sandbox.pipedrive.api import build_router, install_error_handlers
from sandbox.pipedrive.backend import DEFAULT_TOKEN, PipedriveBackend
from sandbox.spec import Endpoint, ServiceSpec


def create_app(endpoint: Endpoint) -> Any:
    """The emulator's ASGI app (API routes plus the shared admin API)."""
    backend = PipedriveBackend()
    return build_emulator_app(
        backend,
        [build_router(backend)],
        title="Pipedrive API sandbox",
        customize=install_error_handlers,
    )


def connections(endpoint: Endpoint) -> dict[str, dict[str, Any]]:
    """``pipedrive_default``: ``host`` = the company's base URL, the API token in ``password``."""
    return {
        "pipedrive_default": {
            "conn_type": "pipedrive",
            "host": endpoint.url,
            "password": DEFAULT_TOKEN,
        }
    }


SERVICE = ServiceSpec(
    name="pipedrive",
    default_port=8106,
    tls=False,
    connections=connections,
    app_factory=create_app,
    description="Pipedrive API v2 persons, organizations, deals, activities; v1 fields, users, webhooks",
)

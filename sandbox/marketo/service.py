"""Registry entry of the Marketo emulator and its ``marketo_default`` connection."""

from __future__ import annotations

from typing import Any

from sandbox.emulator import build_emulator_app
from sandbox.marketo.api import build_router
from sandbox.marketo.backend import CLIENT_ID, CLIENT_SECRET, MUNCHKIN_ID, MarketoBackend
from sandbox.spec import Endpoint, ServiceSpec


def create_app(endpoint: Endpoint) -> Any:
    """The ASGI app: REST and identity routes plus the shared admin API."""
    backend = MarketoBackend()
    return build_emulator_app(backend, [build_router(backend)], title="Marketo REST API sandbox")


def connections(endpoint: Endpoint) -> dict[str, dict[str, Any]]:
    """``marketo_default``: host = the instance base URL, login = client id, password = client secret."""
    return {
        "marketo_default": {
            "conn_type": "marketo",
            "host": endpoint.url,
            "login": CLIENT_ID,
            "password": CLIENT_SECRET,
            "extra": {"munchkin_id": MUNCHKIN_ID},
        }
    }


SERVICE = ServiceSpec(
    name="marketo",
    default_port=8105,
    tls=False,
    connections=connections,
    app_factory=create_app,
    description="Marketo REST API: identity, leads, companies, opportunities, roles, activities",
)

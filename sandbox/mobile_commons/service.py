"""Registry entry of the Mobile Commons emulator and its ``mobile_commons_default`` connection."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from sandbox.emulator import build_emulator_app
from sandbox.mobile_commons.routes import admin_opt_out_router, build_router, install_error_handlers
from sandbox.mobile_commons.store import (
    DEFAULT_COMPANY,
    DEFAULT_LOGIN,
    DEFAULT_PASSWORD,
    MobileCommonsBackend,
)
from sandbox.spec import Endpoint, ServiceSpec


class _Backend(MobileCommonsBackend):
    def admin_router(self) -> APIRouter | None:
        return admin_opt_out_router(self)


def create_app(endpoint: Endpoint) -> Any:
    """The ASGI app: API routes under ``/api``, admin API, call counting and faults."""
    backend = _Backend()
    return build_emulator_app(
        backend, [build_router(backend)], title="Mobile Commons sandbox", customize=install_error_handlers
    )


def connections(endpoint: Endpoint) -> dict[str, dict[str, Any]]:
    """``mobile_commons_default``: Basic auth login/password; production leaves host empty."""
    return {
        "mobile_commons_default": {
            "conn_type": "mobile_commons",
            "host": endpoint.host,
            "port": endpoint.port,
            "schema": "https" if endpoint.tls else "http",
            "login": DEFAULT_LOGIN,
            "password": DEFAULT_PASSWORD,
            "extra": {"company": DEFAULT_COMPANY},
        }
    }


SERVICE = ServiceSpec(
    name="mobile_commons",
    default_port=8107,
    tls=False,
    connections=connections,
    app_factory=create_app,
    description="Mobile Commons: profiles, profile_update, campaigns, opt-in paths, subscribers, groups",
)

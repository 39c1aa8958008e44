"""Registry entry of the RapidPro emulator: app factory and the ``rapidpro_default`` connection."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from sandbox.emulator import build_emulator_app
from sandbox.rapidpro.api import build_router, error_response
from sandbox.rapidpro.backend import DEFAULT_ORG, DEFAULT_TOKEN, RapidProBackend
from sandbox.rapidpro.errors import ApiError
from sandbox.spec import Endpoint, ServiceSpec


def create_app(endpoint: Endpoint) -> Any:
    """The emulator's ASGI app (API routes plus the shared admin API)."""
    backend = RapidProBackend()

    def customize(app: FastAPI) -> None:
        @app.exception_handler(ApiError)
        async def api_error(_: Request, exc: ApiError) -> JSONResponse:
            return error_response(exc)

    return build_emulator_app(
        backend, [build_router(backend)], title="RapidPro API v2 sandbox", customize=customize
    )


def connections(endpoint: Endpoint) -> dict[str, dict[str, Any]]:
    """``rapidpro_default``: the API token in ``password``; ``extra.org`` names the expected workspace."""
    return {
        "rapidpro_default": {
            "conn_type": "rapidpro",
            "host": endpoint.host,
            "port": endpoint.port,
            "schema": "https" if endpoint.tls else "http",
            "password": DEFAULT_TOKEN,
            "extra": {"org": DEFAULT_ORG},
        }
    }


SERVICE = ServiceSpec(
    name="rapidpro",
    default_port=8101,
    tls=False,
    connections=connections,
    app_factory=create_app,
    description="RapidPro/TextIt API v2: contacts, fields, groups, flows, flow starts, runs",
)

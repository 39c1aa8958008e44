"""The Salesforce emulator's ASGI app: routes, error envelopes and the ``Sforce-Limit-Info`` header."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from sandbox.emulator import SandboxMiddleware, build_emulator_app
from sandbox.salesforce.backend import SalesforceBackend
from sandbox.salesforce.bulk import bulk_router
from sandbox.salesforce.collections import collections_router
from sandbox.salesforce.errors import ApiError
from sandbox.salesforce.reports import install_reports
from sandbox.salesforce.rest import data_router, oauth_router

DATA_PREFIX = "/services/data"


class LimitInfoMiddleware:
    """Adds ``Sforce-Limit-Info: api-usage=N/MAX`` to every ``/services/data`` response (C:SS,SFD)."""

    def __init__(self, app: Any, backend: SalesforceBackend) -> None:
        self.app = app
        self.backend = backend

    async def __call__(
        self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
    ) -> None:
        """Wrap ``send`` for API paths."""
        if scope["type"] != "http" or not scope["path"].startswith(DATA_PREFIX):
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"sforce-limit-info"]
                headers.append((b"sforce-limit-info", self.backend.limit_info().encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_header)


def _install(app: FastAPI, backend: SalesforceBackend) -> None:
    app.state.backend = backend

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 405:
            body = [
                {"errorCode": "METHOD_NOT_ALLOWED", "message": f"HTTP Method '{request.method}' not allowed."}
            ]
        elif exc.status_code == 404:
            body = [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]
        else:
            body = [{"errorCode": "UNKNOWN_EXCEPTION", "message": str(exc.detail)}]
        return JSONResponse(body, status_code=exc.status_code)

    install_reports(app, backend)
    app.add_middleware(LimitInfoMiddleware, backend=backend)


def create_backend_app(base_url: str) -> tuple[SalesforceBackend, SandboxMiddleware]:
    """Build a backend and its app (the backend is returned for in-process inspection)."""
    backend = SalesforceBackend(base_url)
    app = build_emulator_app(
        backend,
        [oauth_router(), data_router(), collections_router(), bulk_router()],
        title="crm_sync sandbox: Salesforce",
        strip_trailing_slash=True,
        customize=lambda fastapi_app: _install(fastapi_app, backend),
    )
    return backend, app

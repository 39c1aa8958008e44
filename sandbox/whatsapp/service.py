"""WhatsApp contacts-check emulator: routes, app factory and the ``whatsapp_*`` connections.

Contract: reference/api-contracts.md section 4.2 (WhatsApp Business On-Premises API and
Turn.io, which exposes the same ``/v1`` paths with long-lived tokens).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from sandbox.emulator import build_emulator_app
from sandbox.spec import Endpoint, ServiceSpec
from sandbox.whatsapp.backend import (
    DEFAULT_PASSWORD,
    DEFAULT_TURN_TOKEN,
    DEFAULT_USER,
    WhatsAppBackend,
    WhatsAppError,
    too_many_requests,
)

META = {"api_status": "stable", "version": "2.41.3"}


def _invalid(details: str) -> WhatsAppError:
    return WhatsAppError(400, 1009, "Parameter value is not valid", details)


def _missing(details: str) -> WhatsAppError:
    return WhatsAppError(400, 1008, "Required parameter is missing", details)


def build_router(backend: WhatsAppBackend) -> APIRouter:
    """``POST /v1/users/login`` and ``POST /v1/contacts``."""
    router = APIRouter(prefix="/v1")

    def limited(request: Request) -> dict[str, str]:
        allowed, headers = backend.rate()
        if not allowed:
            error = too_many_requests()
            raise _Answer(error.status, error.body, headers)
        return headers

    @router.post("/users/login")
    async def login(request: Request) -> JSONResponse:
        headers = limited(request)
        try:
            user = backend.login(request.headers.get("authorization"))
        except WhatsAppError as exc:
            raise _Answer(exc.status, exc.body, headers) from exc
        return JSONResponse({"users": [user], "meta": META}, headers=headers)

    @router.post("/contacts")
    async def check_contacts(request: Request) -> JSONResponse:
        try:
            backend.authorize(request.headers.get("authorization"))
        except WhatsAppError as exc:
            raise _Answer(exc.status, exc.body, {}) from exc
        headers = limited(request)
        try:
            inputs, wait, force = _parse(await request.body(), int(backend.config["max_contacts"]))
        except WhatsAppError as exc:
            raise _Answer(exc.status, exc.body, headers) from exc
        results = backend.check(inputs, wait=wait, force=force)
        return JSONResponse({"contacts": results, "meta": META}, headers=headers)

    return router


def _parse(raw: bytes, max_contacts: int) -> tuple[list[str], bool, bool]:
    try:
        body = json.loads(raw) if raw.strip() else None
    except ValueError as exc:
        raise _invalid("Request body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise _invalid("Request body must be a JSON object")
    contacts = body.get("contacts")
    if contacts is None:
        raise _missing("contacts is required")
    if not isinstance(contacts, list) or not contacts or not all(isinstance(c, str) for c in contacts):
        raise _invalid("contacts must be a non-empty list of strings")
    if len(contacts) > max_contacts:
        raise _invalid(f"contacts may hold at most {max_contacts} numbers per request")
    blocking = body.get("blocking", "no_wait")
    if blocking not in {"wait", "no_wait"}:
        raise _invalid("blocking must be 'wait' or 'no_wait'")
    force = body.get("force_check", False)
    if not isinstance(force, bool):
        raise _invalid("force_check must be a boolean")
    return contacts, blocking == "wait", force


class _Answer(Exception):
    """A finished error response, with the rate-limit headers of the call."""

    def __init__(self, status: int, body: Any, headers: dict[str, str]) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers


def create_app(endpoint: Endpoint) -> Any:
    """The emulator's ASGI app (API routes plus the shared admin API)."""
    backend = WhatsAppBackend()

    def customize(app: FastAPI) -> None:
        @app.exception_handler(_Answer)
        async def answer(_: Request, exc: _Answer) -> JSONResponse:
            return JSONResponse(exc.body, status_code=exc.status, headers=exc.headers)

    return build_emulator_app(
        backend, [build_router(backend)], title="WhatsApp API sandbox", customize=customize
    )


def connections(endpoint: Endpoint) -> dict[str, dict[str, Any]]:
    """``whatsapp_default`` (On-Premises login) and ``whatsapp_turn`` (a long-lived Turn token)."""
    base = {
        "conn_type": "whatsapp",
        "host": endpoint.host,
        "port": endpoint.port,
        "schema": "https" if endpoint.tls else "http",
    }
    return {
        "whatsapp_default": {**base, "login": DEFAULT_USER, "password": DEFAULT_PASSWORD},
        "whatsapp_turn": {**base, "password": DEFAULT_TURN_TOKEN, "extra": {"auth": "token"}},
    }


SERVICE = ServiceSpec(
    name="whatsapp",
    default_port=8102,
    tls=False,
    connections=connections,
    app_factory=create_app,
    description="WhatsApp Business On-Premises / Turn.io: users/login and the /v1/contacts check",
)

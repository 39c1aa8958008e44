"""HTTP routes of the Mobile Commons emulator (api-contracts.md section 5)."""

from __future__ import annotations

import asyncio
import base64
import binascii
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from sandbox.mobile_commons import documents as xml
from sandbox.mobile_commons.store import McError, MobileCommonsBackend

XML = "text/xml; charset=utf-8"


class Unauthorized(Exception):
    """Basic credentials missing or wrong: HTTP 401 (api-contracts.md section 5)."""


def _credentials(request: Request) -> tuple[str | None, str | None]:
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None, None
    try:
        user, sep, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    return (user, password) if sep else (None, None)


def ok(*children: Any) -> Response:
    """A success envelope."""
    return Response(xml.document(True, children), media_type=XML)


def build_router(backend: MobileCommonsBackend) -> APIRouter:
    """The API under ``/api``: Basic auth first, then the concurrency and rate limits."""

    async def admitted(request: Request) -> Any:
        if not backend.check_credentials(*_credentials(request)):
            raise Unauthorized
        backend.admit()
        try:
            if backend.config["hold_ms"]:
                await asyncio.sleep(backend.config["hold_ms"] / 1000)
            yield
        finally:
            backend.release()

    router = APIRouter(prefix="/api", dependencies=[Depends(admitted)])

    async def params_of(request: Request) -> dict[str, Any]:
        params = dict(request.query_params)
        if request.method == "POST":
            params.update({k: v for k, v in (await request.form()).items() if isinstance(v, str)})
        return params

    @router.get("/profiles")
    async def profiles(request: Request) -> Response:
        params = await params_of(request)
        rows, page = await run_in_threadpool(backend.list_profiles, params)
        flags = {
            name: params.get(f"include_{name}") in ("1", "true")
            for name in ("subscriptions", "custom_columns")
        }
        return ok(
            xml.profiles_element(
                rows, page, subscriptions=flags["subscriptions"], custom=flags["custom_columns"]
            )
        )

    @router.get("/profile")
    async def profile(request: Request) -> Response:
        params = await params_of(request)
        return ok(xml.profile_element(backend.get_profile(params.get("phone_number"))))

    @router.post("/profile_update")
    async def profile_update(request: Request) -> Response:
        params = await params_of(request)
        return ok(xml.profile_element(await run_in_threadpool(backend.profile_update, params)))

    @router.post("/profile_opt_out")
    async def profile_opt_out(request: Request) -> Response:
        params = await params_of(request)
        backend.opt_out(params.get("phone_number"), params.get("campaign_id"))
        return ok()

    @router.get("/campaigns")
    async def campaigns(request: Request) -> Response:
        with_paths = request.query_params.get("include_opt_in_paths") in ("1", "true")
        return ok(xml.campaigns_element(backend.campaigns(), with_paths=with_paths))

    @router.get("/campaign_subscribers")
    async def campaign_subscribers(request: Request) -> Response:
        rows, page = backend.campaign_subscribers(await params_of(request))
        return ok(xml.subscriptions_element(rows, page))

    @router.get("/groups")
    async def groups() -> Response:
        return ok(xml.groups_element(backend.groups()))

    return router


def admin_opt_out_router(backend: MobileCommonsBackend) -> APIRouter:
    """``POST /_sandbox/opt_out {"phone_number", "campaign_id"?}``: a subscriber texting STOP."""
    router = APIRouter()

    @router.post("/opt_out")
    async def opt_out(request: Request) -> dict[str, Any]:
        body = await request.json()
        try:
            profile = backend.opt_out(body.get("phone_number"), body.get("campaign_id"))
        except McError as exc:
            return {"error": exc.message}
        return {"id": profile.id, "status": profile.status}

    return router


def install_error_handlers(app: FastAPI) -> None:
    """Errors as the API answers them: XML envelopes with HTTP 200, or 401 for bad credentials."""

    @app.exception_handler(McError)
    async def api_error(_: Request, exc: McError) -> Response:
        return Response(xml.error_document(exc), status_code=exc.status, media_type=XML)

    @app.exception_handler(Unauthorized)
    async def unauthorized(_: Request, exc: Unauthorized) -> Response:
        return Response(
            "HTTP Basic: Access denied.\n",
            status_code=401,
            media_type="text/plain",
            headers={"WWW-Authenticate": 'Basic realm="Application"'},
        )

"""HTTP routes of the Maxio Advanced Billing emulator (paths as in api-contracts.md section 6.2)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from sandbox.emulator import read_json
from sandbox.maxio.store import ApiError, MaxioBackend

UNAUTHORIZED_TEXT = "HTTP Basic: Access denied.\n"


def _credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        user, sep, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


async def _json_body(request: Request) -> Any:
    return await read_json(
        request,
        lambda reason: ApiError(400, {"errors": [f"The request body is not valid JSON: {reason}"]}),
        empty=lambda: None,
    )


def build_router(backend: MaxioBackend) -> APIRouter:
    """All API routes, behind HTTP Basic auth (API key as user, ``x`` as password)."""

    def authenticate(request: Request) -> None:
        # Basic auth with the API key as username and "x" as password (api-contracts 6.1).
        if _credentials(request) != (backend.config.api_key, "x"):
            raise ApiError(401, UNAUTHORIZED_TEXT, {"WWW-Authenticate": 'Basic realm="Application"'})

    router = APIRouter(dependencies=[Depends(authenticate)])

    def created(body: Any) -> JSONResponse:
        return JSONResponse(body, status_code=201)

    @router.get("/site.json")
    def read_site() -> Any:
        return backend.site()

    @router.post("/customers.json")
    async def create_customer(request: Request) -> Any:
        return created(backend.create_customer(await _json_body(request)))

    @router.get("/customers.json")
    def list_customers(q: str | None = None, page: str | None = None, per_page: str | None = None) -> Any:
        return backend.search_customers(q, page, per_page)

    @router.get("/customers/lookup.json")
    def lookup_customer(reference: str | None = None) -> Any:
        return backend.lookup_customer(reference)

    @router.get("/customers/{customer_id}.json")
    def read_customer(customer_id: str) -> Any:
        return backend.get_customer(customer_id)

    @router.get("/customers/{customer_id}/subscriptions.json")
    def customer_subscriptions(customer_id: str) -> Any:
        return backend.customer_subscriptions(customer_id)

    @router.get("/product_families/{family_id}/components.json")
    def family_components(family_id: str, page: str | None = None, per_page: str | None = None) -> Any:
        return backend.family_components(family_id, page, per_page)

    @router.get("/components/{component_id}.json")
    def read_component(component_id: str) -> Any:
        return backend.get_component(component_id)

    @router.post("/components/{component_id}/price_points/bulk.json")
    async def bulk_price_points(component_id: str, request: Request) -> Any:
        return created(backend.bulk_create_price_points(component_id, await _json_body(request)))

    @router.post("/components/{component_id}/price_points.json")
    async def create_price_point(component_id: str, request: Request) -> Any:
        return created(backend.create_price_point(component_id, await _json_body(request)))

    @router.get("/components/{component_id}/price_points.json")
    def list_price_points(component_id: str, request: Request) -> Any:
        params = request.query_params
        return backend.list_price_points(
            component_id, params.get("page"), params.get("per_page"), params.get("filter[type]")
        )

    @router.get("/components/{component_id}/price_points/{price_point_id}.json")
    def read_price_point(component_id: str, price_point_id: str) -> Any:
        return backend.get_price_point(component_id, price_point_id)

    @router.post("/subscriptions.json")
    async def create_subscription(request: Request) -> Any:
        return created(backend.create_subscription(await _json_body(request)))

    @router.get("/subscriptions/lookup.json")
    def lookup_subscription(reference: str | None = None) -> Any:
        return backend.lookup_subscription(reference)

    @router.get("/subscriptions/{subscription_id}.json")
    def read_subscription(subscription_id: str) -> Any:
        return backend.get_subscription(subscription_id)

    @router.get("/subscriptions/{subscription_id}/components.json")
    def subscription_components(subscription_id: str) -> Any:
        return backend.subscription_components(subscription_id)

    return router


def install_error_handler(app: FastAPI) -> None:
    """Render :class:`ApiError` as Maxio does: JSON envelope, plain text, or an empty body."""

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> Response:
        if exc.body is None:
            return Response(status_code=exc.status, headers=exc.headers)
        if isinstance(exc.body, str):
            return PlainTextResponse(exc.body, status_code=exc.status, headers=exc.headers)
        return JSONResponse(exc.body, status_code=exc.status, headers=exc.headers)

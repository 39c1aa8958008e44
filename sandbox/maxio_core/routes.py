"""HTTP routes of the Maxio Core emulator under ``/api/v1.0/`` (trailing slashes required, as in DRF)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from sandbox.emulator import read_json
from sandbox.maxio_core.store import ApiError, MaxioCoreBackend

API_PREFIX = "/api/v1.0"


def build_router(backend: MaxioCoreBackend) -> APIRouter:
    """Customers, registers and contracts, behind token auth."""

    def authenticate(request: Request) -> None:
        backend.authenticate(request.headers.get("authorization"))

    router = APIRouter(prefix=API_PREFIX, dependencies=[Depends(authenticate)])

    def page(kind: str, request: Request) -> Any:
        url = str(request.url.replace(query=""))
        return backend.list(kind, dict(request.query_params), url)

    @router.get("/customers/")
    def list_customers(request: Request) -> Any:
        return page("customers", request)

    @router.get("/customers/{customer_id}/")
    def read_customer(customer_id: str) -> Any:
        return backend.get("customers", customer_id)

    @router.get("/registers/")
    def list_registers(request: Request) -> Any:
        return page("registers", request)

    @router.get("/contracts/")
    def list_contracts(request: Request) -> Any:
        return page("contracts", request)

    @router.get("/contracts/{contract_id}/")
    def read_contract(contract_id: str) -> Any:
        return backend.get("contracts", contract_id)

    @router.patch("/contracts/{contract_id}/")
    async def patch_contract(contract_id: str, request: Request) -> Any:
        body = await read_json(
            request, lambda reason: ApiError(400, {"detail": f"JSON parse error - {reason}"})
        )
        return backend.patch_contract(contract_id, body)

    return router


def install_error_handler(app: FastAPI) -> None:
    """Render :class:`ApiError` and unknown paths as DRF does (``{"detail": ...}``).

    A path without its trailing slash is a 404 rather than Starlette's redirect: Django's
    APPEND_SLASH redirect turns a PATCH into a GET, so clients must send the slash.
    """
    app.router.redirect_slashes = False

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(404)
    async def unknown_path(_: Request, __: Exception) -> JSONResponse:
        return JSONResponse({"detail": "Not found."}, status_code=404)

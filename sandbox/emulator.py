"""The shared shell of every ASGI emulator: admin API, call counting, faults, lifespan."""

from __future__ import annotations

import json
import threading
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.routing import Match

from sandbox.faults import FaultBook, FaultRuleError, apply_fault

ADMIN_PREFIX = "/_sandbox"


class AdminError(ValueError):
    """A bad admin request (answered 400 ``{"error": ...}``)."""

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.details = details


class EmulatorBackend(ABC):
    """The in-memory state of one emulator and its admin hooks."""

    name: str = "emulator"

    @abstractmethod
    def reset(self) -> None:
        """Forget all data and configuration, back to the state right after start."""

    @abstractmethod
    def seed(self, body: dict[str, Any]) -> dict[str, Any]:
        """Load records (service-specific JSON); raise AdminError on invalid data."""

    @abstractmethod
    def state(self, params: dict[str, str]) -> Any:
        """Stored data for assertions, filtered by query parameters."""

    @abstractmethod
    def configure(self, knobs: dict[str, Any]) -> dict[str, Any]:
        """Apply per-service knobs and return the full current configuration."""

    @abstractmethod
    def daily_limit_response(self) -> tuple[int, Any, dict[str, str]]:
        """Status, body and headers this service answers once its daily quota is used up."""

    def admin_router(self) -> APIRouter | None:
        """Extra service-specific admin endpoints, mounted under ``/_sandbox``."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook; most emulators hold no threads
        """Release background resources (threads) at server shutdown."""


class CallLog:
    """Counts of API calls per ``METHOD /path/{template}``; admin calls are not counted."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def record(self, key: str) -> None:
        """Count one call."""
        with self._lock:
            self._counts[key] += 1

    def reset(self) -> None:
        """Zero all counts."""
        with self._lock:
            self._counts.clear()

    def snapshot(self) -> dict[str, Any]:
        """``{"total": n, "by_route": {"GET /x/{id}": n}}``."""
        with self._lock:
            return {"total": sum(self._counts.values()), "by_route": dict(sorted(self._counts.items()))}


def route_template(app: FastAPI, scope: dict[str, Any]) -> str:
    """The matching route's path template, or the raw path when nothing matches."""
    for route in app.router.routes:
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return getattr(route, "path", scope["path"])
    return scope["path"]


class SandboxMiddleware:
    """Outermost ASGI layer: path normalisation, call counting and fault injection."""

    def __init__(
        self,
        app: FastAPI,
        backend: EmulatorBackend,
        calls: CallLog,
        faults: FaultBook,
        *,
        strip_trailing_slash: bool,
    ) -> None:
        self.app = app
        self.backend = backend
        self.calls = calls
        self.faults = faults
        self.strip_trailing_slash = strip_trailing_slash

    async def __call__(
        self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
    ) -> None:
        """Serve one ASGI event."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if self.strip_trailing_slash and len(path) > 1 and path.endswith("/"):
            scope = dict(scope, path=path.rstrip("/") or "/")
            path = scope["path"]
        if path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/"):
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        self.calls.record(f"{method} {route_template(self.app, scope)}")
        rule = self.faults.take(method, path)
        if rule is None:
            await self.app(scope, receive, send)
        else:
            await apply_fault(rule, self.app, scope, receive, send, self.backend.daily_limit_response)


async def read_json(
    request: Request, invalid: Callable[[str], Exception], *, empty: Callable[[], Any] = dict
) -> Any:
    """The request's JSON body, ``empty()`` when it has none.

    A body that is not JSON raises ``invalid(reason)``: each API answers it in its own error shape.
    """
    raw = await request.body()
    if not raw.strip():
        return empty()
    try:
        return json.loads(raw)
    except ValueError as exc:  # JSONDecodeError, or UnicodeDecodeError for bytes that are not UTF-8
        raise invalid(str(getattr(exc, "msg", exc))) from exc


def _admin_router(backend: EmulatorBackend, calls: CallLog, faults: FaultBook) -> APIRouter:
    router = APIRouter(prefix=ADMIN_PREFIX)

    async def json_body(request: Request) -> Any:
        return await read_json(request, lambda reason: AdminError(f"body is not JSON: {reason}"))

    @router.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "service": backend.name}

    @router.post("/reset")
    def reset() -> dict[str, Any]:
        backend.reset()
        calls.reset()
        faults.clear()
        return {"status": "reset"}

    @router.post("/seed")
    async def seed(request: Request) -> dict[str, Any]:
        body = await json_body(request)
        if not isinstance(body, dict):
            raise AdminError("seed takes a JSON object")
        return backend.seed(body)

    @router.get("/state")
    def state(request: Request) -> Any:
        return backend.state(dict(request.query_params))

    @router.get("/calls")
    def get_calls() -> dict[str, Any]:
        return calls.snapshot()

    @router.post("/calls/reset")
    def reset_calls() -> dict[str, Any]:
        calls.reset()
        return calls.snapshot()

    @router.get("/faults")
    def get_faults() -> list[dict[str, Any]]:
        return faults.describe()

    @router.post("/faults")
    async def add_faults(request: Request) -> list[dict[str, Any]]:
        body = await json_body(request)
        if isinstance(body, dict) and "rules" in body:
            body = body["rules"]
        try:
            faults.add(body)
        except FaultRuleError as exc:
            raise AdminError(str(exc)) from exc
        return faults.describe()

    @router.delete("/faults")
    def clear_faults() -> list[dict[str, Any]]:
        faults.clear()
        return []

    @router.get("/config")
    def get_config() -> dict[str, Any]:
        return backend.configure({})

    @router.post("/config")
    async def set_config(request: Request) -> dict[str, Any]:
        body = await json_body(request)
        if not isinstance(body, dict):
            raise AdminError("config takes a JSON object of knobs")
        return backend.configure(body)

    return router


def build_emulator_app(
    backend: EmulatorBackend,
    routers: Sequence[APIRouter],
    *,
    title: str,
    strip_trailing_slash: bool = False,
    customize: Callable[[FastAPI], None] | None = None,
) -> SandboxMiddleware:
    """Assemble an emulator: the service's routers plus the shared admin API and middleware.

    Args:
        backend: The emulator's state and admin hooks.
        routers: The service's own API routes.
        title: Shown in the OpenAPI page.
        strip_trailing_slash: Treat ``/a/b/`` as ``/a/b`` (clients such as simple-salesforce
            mix both).
        customize: Called with the FastAPI app to add exception handlers or middleware.
    """

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        backend.close()

    app = FastAPI(title=title, lifespan=lifespan, docs_url=f"{ADMIN_PREFIX}/docs", openapi_url=None)
    calls, faults = CallLog(), FaultBook()

    @app.exception_handler(AdminError)
    async def admin_error(_: Request, exc: AdminError) -> JSONResponse:
        body: dict[str, Any] = {"error": str(exc)}
        if exc.details is not None:
            body["details"] = exc.details
        return JSONResponse(body, status_code=400)

    app.include_router(_admin_router(backend, calls, faults))
    extra = backend.admin_router()
    if extra is not None:
        app.include_router(extra, prefix=ADMIN_PREFIX)
    for router in routers:
        app.include_router(router)
    if customize is not None:
        customize(app)
    return SandboxMiddleware(app, backend, calls, faults, strip_trailing_slash=strip_trailing_slash)

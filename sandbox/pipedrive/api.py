"""HTTP routes of the Pipedrive emulator: v2 entities and search, v1 fields, users, webhooks."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from sandbox.emulator import read_json
from sandbox.pipedrive.backend import COMPANY_DOMAIN, PipedriveBackend
from sandbox.pipedrive.errors import ApiError, bad_request, error, not_found
from sandbox.pipedrive.models import ENTITIES, FIELD_ENDPOINTS, rfc3339
from sandbox.pipedrive.paging import cursor_page, parse_limit, v1_page, v2_body
from sandbox.pipedrive.store import LABEL, OWNER_ID, SEARCH_FIELDS, record_key, search_key
from sandbox.pipedrive.webhooks import COMPANY_ID

V1_PREFIXES = ("/v1", "/api/v1")


async def _body(request: Request) -> Any:
    return await read_json(request, lambda reason: bad_request(f"request body is not valid JSON: {reason}"))


def _id(raw: str, label: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise not_found(label) from None


def _fingerprint(entity: str, request: Request) -> str:
    """What a cursor is bound to: the entity and every filter except paging."""
    params = sorted((k, v) for k, v in request.query_params.multi_items() if k not in {"cursor", "limit"})
    return json.dumps([entity, params], separators=(",", ":"))


def build_router(backend: PipedriveBackend) -> APIRouter:
    """The API routes, bound to ``backend``."""
    router = APIRouter()

    def run(
        request: Request, kind: str, work: Callable[[], Any], *, v2: bool = True, status: int = 200
    ) -> JSONResponse:
        with backend.lock:
            headers = backend.begin(request, kind, v2=v2)
            request.state.rate_headers = headers
            return JSONResponse(work(), status_code=status, headers=headers)

    for entity in ENTITIES:
        _entity_routes(router, backend, run, entity)
    for entity in SEARCH_FIELDS:
        _search_route(router, backend, run, entity)

    def pipelines(request: Request) -> list[dict[str, Any]]:
        return sorted(backend.company.pipelines.values(), key=lambda p: p["id"])

    def stages(request: Request) -> list[dict[str, Any]]:
        items = sorted(backend.company.stages.values(), key=lambda s: s["id"])
        if request.query_params.get("pipeline_id"):
            wanted = _id(request.query_params["pipeline_id"], "Pipeline")
            items = [s for s in items if s["pipeline_id"] == wanted]
        return items

    _settings_route(router, run, "pipelines", pipelines)
    _settings_route(router, run, "stages", stages)

    for prefix in V1_PREFIXES:
        _v1_routes(router, backend, run, prefix)
    return router


def _settings_route(
    router: APIRouter,
    run: Callable[..., JSONResponse],
    name: str,
    items: Callable[[Request], list[dict[str, Any]]],
) -> None:
    """``GET /api/v2/pipelines`` or ``/api/v2/stages``: a cursor-paged list with v2 timestamps."""

    @router.get(f"/api/v2/{name}", name=f"list_{name}")
    def listing(request: Request) -> JSONResponse:
        def work() -> Any:
            page, cursor = cursor_page(
                items(request),
                key=lambda item: (item["id"],),
                cursor=request.query_params.get("cursor"),
                limit=parse_limit(request.query_params.get("limit")),
                fingerprint=_fingerprint(name, request),
            )
            stamps = ("add_time", "update_time")
            return v2_body([{**item, **{k: rfc3339(item[k]) for k in stamps}} for item in page], cursor)

        return run(request, "list", work)


def _entity_routes(
    router: APIRouter, backend: PipedriveBackend, run: Callable[..., JSONResponse], entity: str
) -> None:
    label = LABEL[entity]
    base = f"/api/v2/{entity}"

    @router.get(base, name=f"list_{entity}")
    def list_records(request: Request) -> JSONResponse:
        def work() -> Any:
            limit = parse_limit(request.query_params.get("limit"))
            items = backend.company.query(entity, request.query_params)
            page, cursor = cursor_page(
                items,
                key=record_key(request.query_params.get("sort_by", "id")),
                descending=request.query_params.get("sort_direction") == "desc",
                cursor=request.query_params.get("cursor"),
                limit=limit,
                fingerprint=_fingerprint(entity, request),
            )
            return v2_body([backend.company.render(entity, r) for r in page], cursor)

        return run(request, "list", work)

    @router.post(base, name=f"create_{entity}")
    async def create(request: Request) -> JSONResponse:
        body = await _body(request)

        def work() -> Any:
            record = backend.company.create(entity, body, source="api", user_id=OWNER_ID)
            return {"success": True, "data": backend.company.render(entity, record)}

        return run(request, "write", work)

    @router.get(base + "/{item_id}", name=f"get_{entity}")
    def get(request: Request, item_id: str) -> JSONResponse:
        def work() -> Any:
            record = backend.company.live(entity, _id(item_id, label))
            return {"success": True, "data": backend.company.render(entity, record)}

        return run(request, "get", work)

    @router.patch(base + "/{item_id}", name=f"update_{entity}")
    async def update(request: Request, item_id: str) -> JSONResponse:
        body = await _body(request)

        def work() -> Any:
            record = backend.company.update(entity, _id(item_id, label), body, source="api", user_id=OWNER_ID)
            return {"success": True, "data": backend.company.render(entity, record)}

        return run(request, "write", work)

    @router.delete(base + "/{item_id}", name=f"delete_{entity}")
    def delete(request: Request, item_id: str) -> JSONResponse:
        def work() -> Any:
            record_id = _id(item_id, label)
            backend.company.delete(entity, record_id, source="api", user_id=OWNER_ID)
            return {"success": True, "data": {"id": record_id}}

        return run(request, "delete", work)


def _search_route(
    router: APIRouter, backend: PipedriveBackend, run: Callable[..., JSONResponse], entity: str
) -> None:
    @router.get(f"/api/v2/{entity}/search", name=f"search_{entity}")
    def search(request: Request) -> JSONResponse:
        def work() -> Any:
            hits = backend.company.search(entity, request.query_params)
            page, cursor = cursor_page(
                hits,
                key=search_key,
                cursor=request.query_params.get("cursor"),
                limit=parse_limit(request.query_params.get("limit")),
                fingerprint=_fingerprint(f"{entity}/search", request),
            )
            return v2_body({"items": page}, cursor)

        return run(request, "search", work)

    # The search route must win over /{item_id}: move it before the entity's routes.
    router.routes.insert(0, router.routes.pop())


def _v1_routes(
    router: APIRouter, backend: PipedriveBackend, run: Callable[..., JSONResponse], prefix: str
) -> None:
    for endpoint, entity in FIELD_ENDPOINTS.items():
        _fields_route(router, backend, run, prefix, endpoint, entity)

    @router.get(f"{prefix}/users")
    def users(request: Request) -> JSONResponse:
        def work() -> Any:
            return {"success": True, "data": list(backend.company.users.values())}

        return run(request, "list", work, v2=False)

    @router.get(f"{prefix}/users/find")
    def find_users(request: Request) -> JSONResponse:
        def work() -> Any:
            term = (request.query_params.get("term") or "").strip().lower()
            if not term:
                raise bad_request("'term' is required")
            by_email = request.query_params.get("search_by_email") in {"1", "true"}
            field = "email" if by_email else "name"
            found = [u for u in backend.company.users.values() if term in str(u[field]).lower()]
            return {"success": True, "data": found or None}

        return run(request, "search", work, v2=False)

    @router.get(f"{prefix}/users/me")
    def me(request: Request) -> JSONResponse:
        def work() -> Any:
            user = backend.company.users[OWNER_ID]
            return {
                "success": True,
                "data": {**user, "company_domain": COMPANY_DOMAIN, "company_id": COMPANY_ID},
            }

        return run(request, "get", work, v2=False)

    @router.get(f"{prefix}/webhooks")
    def list_webhooks(request: Request) -> JSONResponse:
        def work() -> Any:
            return {"success": True, "status": "ok", "data": [w.to_json() for w in backend.webhooks.values()]}

        return run(request, "list", work, v2=False)

    @router.post(f"{prefix}/webhooks")
    async def add_webhook(request: Request) -> JSONResponse:
        body = await _body(request)

        def work() -> Any:
            return {"success": True, "status": "ok", "data": backend.add_webhook(body).to_json()}

        return run(request, "write", work, v2=False, status=201)

    @router.delete(f"{prefix}/webhooks/{{webhook_id}}")
    def delete_webhook(request: Request, webhook_id: str) -> JSONResponse:
        def work() -> Any:
            if backend.webhooks.pop(_id(webhook_id, "Webhook"), None) is None:
                raise not_found("Webhook")
            return {"success": True, "status": "ok"}

        return run(request, "delete", work, v2=False)


def _fields_route(
    router: APIRouter,
    backend: PipedriveBackend,
    run: Callable[..., JSONResponse],
    prefix: str,
    endpoint: str,
    entity: str,
) -> None:
    @router.get(f"{prefix}/{endpoint}", name=f"{endpoint}{prefix.replace('/', '_')}")
    def fields(request: Request) -> JSONResponse:
        def work() -> Any:
            items = [f.to_json() for f in backend.company.fields[entity]]
            page, additional = v1_page(
                items, start=request.query_params.get("start"), limit=request.query_params.get("limit")
            )
            return {"success": True, "data": page, "additional_data": additional}

        return run(request, "fields", work, v2=False)


def install_error_handlers(app: FastAPI) -> None:
    """Render errors in Pipedrive's envelope, with the rate-limit headers already charged."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        headers = {**getattr(request.state, "rate_headers", {}), **exc.headers}
        return JSONResponse(exc.body, status_code=exc.status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = "Unknown method ." if exc.status_code == 404 else str(exc.detail)
        raised = error(exc.status_code, message)
        return JSONResponse(raised.body, status_code=exc.status_code)

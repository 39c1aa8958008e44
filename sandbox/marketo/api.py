"""The Marketo REST routes: identity, leads, objects, activities, usage (api-contracts.md section 2)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from sandbox.marketo import errors
from sandbox.marketo.activities import CHANGE_DATA_VALUE, DELETE_LEAD, NEW_LEAD, decode_token, encode_token
from sandbox.marketo.backend import MarketoBackend
from sandbox.marketo.errors import MarketoError
from sandbox.marketo.limits import quota_day
from sandbox.marketo.schema import OBJECT_TYPES, ObjectType, parse_datetime
from sandbox.marketo.store import batch_size, split_list

MAX_URI = 8 * 1024
MAX_BODY = 1024 * 1024
Work = Callable[[dict[str, Any]], dict[str, Any]]


async def _params(request: Request, *, body: bool) -> dict[str, Any]:
    """Query parameters merged with the body: JSON, or a form for ``POST ...?_method=GET``.

    Raises:
        MarketoError: 612 for a body that is neither JSON nor a form, 609 for invalid JSON.
    """
    params: dict[str, Any] = dict(request.query_params)
    if not body:
        return params
    raw = await request.body()
    if not raw.strip():
        return params
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/x-www-form-urlencoded" and params.get("_method") == "GET":
        return {**params, **dict(parse_qsl(raw.decode(), keep_blank_values=True))}
    if content_type != "application/json":
        raise MarketoError(*errors.CONTENT_TYPE)
    try:
        decoded = json.loads(raw)
    except ValueError:
        raise MarketoError(*errors.INVALID_JSON) from None
    if not isinstance(decoded, dict):
        raise MarketoError(*errors.INVALID_JSON)
    return {**params, **decoded}


def build_router(backend: MarketoBackend) -> APIRouter:
    """Every route, bound to ``backend``."""
    router = APIRouter()

    async def serve(request: Request, work: Work, *, body: bool = False) -> Response:
        """Admission (HTTP limits, auth, injected errors, quota, rate, concurrency), then ``work``."""
        if len(request.url.query) > MAX_URI:
            return Response("Request-URI Too Long", status_code=414)
        if body and len(await request.body()) > MAX_BODY:
            return Response("Request Entity Too Large", status_code=413)
        try:
            backend.limits.authenticate(
                request.headers.get("authorization"), request.query_params.get("access_token")
            )
            injected = backend.limits.take_injection(request.url.path)
            if injected is not None:
                raise injected
            backend.limits.admit(backend.config)
        except MarketoError as exc:
            return JSONResponse(errors.failure(exc.code, exc.message))
        counted = False
        try:
            if backend.config["latency_ms"]:
                await asyncio.sleep(float(backend.config["latency_ms"]) / 1000)
            params = await _params(request, body=body)
            with backend.lock:
                answer = work(params)
            counted = True
            return JSONResponse(answer)
        except MarketoError as exc:
            return JSONResponse(errors.failure(exc.code, exc.message))
        finally:
            backend.limits.release(counted=counted)

    def ok(result: list[Any], **extra: Any) -> dict[str, Any]:
        return errors.success(result, **extra)

    # ---- identity ------------------------------------------------------------------------------

    @router.api_route("/identity/oauth/token", methods=["GET", "POST"])
    async def token(request: Request) -> JSONResponse:
        params = dict(request.query_params)
        if request.method == "POST":
            params |= dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        if params.get("grant_type") != "client_credentials":
            return JSONResponse(
                {"error": "unsupported_grant_type", "error_description": "Unsupported grant type"},
                status_code=400,
            )
        config = backend.config
        if (params.get("client_id"), params.get("client_secret")) != (
            config["client_id"],
            config["client_secret"],
        ):
            return JSONResponse(
                {"error": "invalid_client", "error_description": "Bad client credentials"}, status_code=401
            )
        value, expires_in = backend.limits.issue(config["client_id"], float(config["token_lifetime_s"]))
        return JSONResponse(
            {"access_token": value, "token_type": "bearer", "expires_in": expires_in, "scope": "sync@crm"}
        )

    # ---- leads ---------------------------------------------------------------------------------

    def lead_query(params: dict[str, Any]) -> dict[str, Any]:
        rows, token = backend.store.query_leads(
            params.get("filterType"),
            params.get("filterValues"),
            params.get("fields"),
            params.get("batchSize"),
            params.get("nextPageToken"),
        )
        return ok(rows, **({"nextPageToken": token} if token else {}))

    @router.get("/rest/v1/leads.json")
    async def get_leads(request: Request) -> Response:
        return await serve(request, lead_query)

    @router.post("/rest/v1/leads.json")
    async def post_leads(request: Request) -> Response:
        if request.query_params.get("_method") == "GET":
            return await serve(request, lead_query, body=True)
        return await serve(request, lambda p: ok(backend.store.sync_leads(p)), body=True)

    @router.get("/rest/v1/lead/{lead_id}.json")
    async def get_lead(request: Request, lead_id: str) -> Response:
        return await serve(request, lambda p: ok(backend.store.get_lead(lead_id, p.get("fields"))))

    @router.post("/rest/v1/leads/delete.json")
    @router.delete("/rest/v1/leads.json")
    async def delete_leads(request: Request) -> Response:
        return await serve(request, lambda p: ok(backend.store.delete_leads(p)), body=True)

    @router.get("/rest/v1/leads/describe.json")
    async def describe_leads(request: Request) -> Response:
        return await serve(request, lambda _: ok(backend.store.describe_leads()))

    @router.get("/rest/v1/leads/describe2.json")
    async def describe2_leads(request: Request) -> Response:
        return await serve(request, lambda _: ok(backend.store.describe2_leads()))

    # ---- companies, opportunities, roles ---------------------------------------------------------

    def add_object_routes(otype: ObjectType) -> None:
        base = f"/rest/v1/{otype.path}"

        def query(params: dict[str, Any]) -> dict[str, Any]:
            rows, token = backend.store.query_objects(otype, params)
            return ok(rows, **({"nextPageToken": token} if token else {}))

        async def describe(request: Request) -> Response:
            return await serve(request, lambda _: ok([otype.describe()]))

        async def get_objects(request: Request) -> Response:
            return await serve(request, query)

        async def post_objects(request: Request) -> Response:
            if request.query_params.get("_method") == "GET":
                return await serve(request, query, body=True)
            return await serve(request, lambda p: ok(backend.store.sync_objects(otype, p)), body=True)

        async def delete_objects(request: Request) -> Response:
            return await serve(request, lambda p: ok(backend.store.delete_objects(otype, p)), body=True)

        router.add_api_route(f"{base}/describe.json", describe, methods=["GET"])
        router.add_api_route(f"{base}.json", get_objects, methods=["GET"])
        router.add_api_route(f"{base}.json", post_objects, methods=["POST"])
        router.add_api_route(f"{base}/delete.json", delete_objects, methods=["POST"])

    for otype in OBJECT_TYPES.values():
        add_object_routes(otype)

    # ---- activities ----------------------------------------------------------------------------

    @router.get("/rest/v1/activities/types.json")
    async def activity_types(request: Request) -> Response:
        return await serve(request, lambda _: ok(backend.store.activity_types()))

    @router.get("/rest/v1/activities/external/types.json")
    async def custom_types(request: Request) -> Response:
        return await serve(request, lambda _: ok(list(backend.store.custom_types.values())))

    @router.post("/rest/v1/activities/external.json")
    async def add_custom(request: Request) -> Response:
        return await serve(request, lambda p: ok(backend.store.add_custom_activities(p)), body=True)

    def paging_token(params: dict[str, Any]) -> dict[str, Any]:
        since = params.get("sinceDatetime")
        if not since:
            raise MarketoError("701", "sinceDatetime cannot be blank")
        moment = parse_datetime(since, MarketoError("704", "Invalid date format"))
        token = encode_token(backend.store.activities.position_since(moment))
        return {"requestId": errors.request_id(), "success": True, "nextPageToken": token}

    @router.get("/rest/v1/activities/pagingtoken.json")
    async def get_paging_token(request: Request) -> Response:
        return await serve(request, paging_token)

    def activity_page(
        params: dict[str, Any], keep: Callable[[Any], bool], render: Callable[[Any], Any]
    ) -> dict[str, Any]:
        after = decode_token(params.get("nextPageToken"))
        lead_ids = split_list(params.get("leadIds"))
        if len(lead_ids) > 30:
            raise MarketoError("1003", "leadIds may hold at most 30 ids")
        wanted_leads = {int(i) for i in lead_ids if i.isdigit()}
        rendered: list[Any] = []

        def accept(activity: Any) -> bool:
            if (wanted_leads and activity.lead_id not in wanted_leads) or not keep(activity):
                return False
            body = render(activity)
            if body is None:
                return False
            rendered.append(body)
            return True

        _, position, more = backend.store.activities.page(after, accept, batch_size(params.get("batchSize")))
        return {
            "requestId": errors.request_id(),
            "success": True,
            "nextPageToken": encode_token(position),
            "moreResult": more,
            "result": rendered,
        }

    def activities(params: dict[str, Any]) -> dict[str, Any]:
        types = split_list(params.get("activityTypeIds"))
        if not types:
            raise MarketoError("701", "activityTypeIds cannot be blank")
        if len(types) > 10 or not all(t.isdigit() for t in types):
            raise MarketoError("1003", "activityTypeIds must be at most 10 integer ids")
        wanted = {int(t) for t in types}
        return activity_page(params, lambda a: a.type_id in wanted, lambda a: a.to_json())

    def lead_changes(params: dict[str, Any]) -> dict[str, Any]:
        fields = set(split_list(params.get("fields")))
        if not fields:
            raise MarketoError("701", "fields cannot be blank")
        unknown = sorted(fields - set(backend.store.lead_fields))
        if unknown:
            raise MarketoError("1006", f"Field '{unknown[0]}' not found")
        return activity_page(
            params, lambda a: a.type_id in (NEW_LEAD, CHANGE_DATA_VALUE), lambda a: a.lead_change_json(fields)
        )

    @router.get("/rest/v1/activities.json")
    async def get_activities(request: Request) -> Response:
        return await serve(request, activities)

    @router.get("/rest/v1/activities/leadchanges.json")
    async def get_lead_changes(request: Request) -> Response:
        return await serve(request, lead_changes)

    @router.get("/rest/v1/activities/deletedleads.json")
    async def get_deleted_leads(request: Request) -> Response:
        return await serve(
            request, lambda p: activity_page(p, lambda a: a.type_id == DELETE_LEAD, lambda a: a.to_json())
        )

    # ---- usage and the rest ----------------------------------------------------------------------

    def usage(_: dict[str, Any]) -> dict[str, Any]:
        used = backend.limits.used_today()
        users = [{"userId": backend.config["client_id"], "count": used}] if used else []
        return ok([{"date": quota_day().isoformat(), "total": used, "users": users}])

    @router.get("/rest/v1/stats/usage.json")
    async def get_usage(request: Request) -> Response:
        return await serve(request, usage)

    def not_found(_: dict[str, Any]) -> dict[str, Any]:
        raise MarketoError(*errors.NOT_FOUND)

    @router.api_route("/rest/{path:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    async def unknown(request: Request, path: str) -> Response:
        return await serve(request, not_found)

    return router

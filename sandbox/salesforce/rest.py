"""REST resources: OAuth token, versions, limits, SOQL query/queryMore, sObject CRUD, describe."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from sandbox.salesforce.api import API_PREFIX, ApiContext, api_context, json_body, offload
from sandbox.salesforce.backend import (
    CLIENT_ID,
    CLIENT_SECRET,
    MAX_VERSION,
    MIN_VERSION,
    PASSWORD,
    SECURITY_TOKEN,
    USERNAME,
    Cursor,
    SalesforceBackend,
)
from sandbox.salesforce.errors import ApiError, not_found
from sandbox.salesforce.ids import to_18
from sandbox.salesforce.query import compile_soql, run_count, shape_records
from sandbox.salesforce.schema import FieldSchema, ObjectSchema
from sandbox.salesforce.values import to_json

Api = Annotated[ApiContext, Depends(api_context)]
_BATCH_RE = re.compile(r"batchSize\s*=\s*(\d+)", re.IGNORECASE)


def _oauth_error(error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=400)


def oauth_router() -> APIRouter:
    """``POST /services/oauth2/token``: password and client-credentials grants."""
    router = APIRouter()

    @router.post("/services/oauth2/token")
    async def token(request: Request) -> JSONResponse:
        backend: SalesforceBackend = request.app.state.backend
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode(errors="replace")).items()}
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("basic "):
            try:
                client_id, _, client_secret = base64.b64decode(auth[6:]).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return _oauth_error("invalid_client", "invalid client credentials")
        grant = form.get("grant_type")
        if grant not in {"password", "client_credentials"}:
            return _oauth_error("unsupported_grant_type", "grant type not supported")
        if client_id != CLIENT_ID:
            return _oauth_error("invalid_client_id", "client identifier invalid")
        if client_secret != CLIENT_SECRET:
            return _oauth_error("invalid_client", "invalid client credentials")
        if grant == "password":
            if form.get("username") != USERNAME or form.get("password") != PASSWORD + SECURITY_TOKEN:
                return _oauth_error("invalid_grant", "authentication failure")
            return JSONResponse(backend.issue_token(scope=None))
        return JSONResponse(backend.issue_token(scope="api"))

    return router


def describe_field(f: FieldSchema) -> dict[str, Any]:
    """One entry of ``describe().fields``."""
    return {
        "name": f.name,
        "label": f.label,
        "type": f.type,
        "length": f.length
        if f.type not in {"boolean", "date", "datetime", "double", "currency", "int"}
        else 0,
        "nillable": f.nillable,
        "createable": f.createable,
        "updateable": f.updateable,
        "externalId": f.external_id,
        "unique": f.unique,
        "idLookup": f.name == "Id" or f.external_id or f.unique,
        "custom": f.custom,
        "calculated": bool(f.computed),
        "autoNumber": bool(f.auto_number),
        "defaultedOnCreate": f.default is not None or f.name == "OwnerId" or bool(f.auto_number),
        "picklistValues": [
            {"active": True, "defaultValue": False, "label": v, "value": v, "validFor": None}
            for v in f.values
        ],
        "restrictedPicklist": f.restricted,
        "referenceTo": [f.reference_to] if f.reference_to else [],
        "relationshipName": f.relationship_name,
        "soapType": {"boolean": "xsd:boolean", "date": "xsd:date", "datetime": "xsd:dateTime"}.get(
            f.type, "xsd:string"
        ),
    }


def describe_object(obj: ObjectSchema, version: str, *, with_fields: bool) -> dict[str, Any]:
    """``describe()`` (or the ``objectDescribe`` summary when ``with_fields`` is false)."""
    base = f"/services/data/v{version}/sobjects/{obj.name}"
    body: dict[str, Any] = {
        "name": obj.name,
        "label": obj.label,
        "keyPrefix": obj.key_prefix,
        "custom": obj.custom,
        "createable": True,
        "updateable": True,
        "deletable": True,
        "queryable": True,
        "urls": {"sobject": base, "describe": f"{base}/describe", "rowTemplate": f"{base}/{{ID}}"},
    }
    if with_fields:
        body["fields"] = [describe_field(f) for f in obj.fields.values()]
    return body


def record_json(
    obj: ObjectSchema, row: dict[str, Any], version: str, fields: list[str] | None
) -> dict[str, Any]:
    """A stored row as the REST API returns it."""
    names = fields if fields is not None else list(obj.fields)
    out: dict[str, Any] = {
        "attributes": {"type": obj.name, "url": f"/services/data/v{version}/sobjects/{obj.name}/{row['Id']}"}
    }
    for name in names:
        out[name] = to_json(obj.fields[name], row[name])
    return out


def _query_page(ctx: ApiContext, locator: str, offset: int) -> dict[str, Any]:
    cursor = ctx.backend.cursor(locator)
    page = cursor.rows[offset : offset + cursor.batch_size]
    end = offset + len(page)
    body: dict[str, Any] = {"totalSize": cursor.total, "done": end >= len(cursor.rows)}
    if body["done"]:
        ctx.backend.close_cursor(locator)
    else:
        body["nextRecordsUrl"] = f"/services/data/v{ctx.version}/query/{locator}-{end}"
    body["records"] = shape_records(cursor.compiled, page, ctx.version)
    return body


def _run_query(ctx: ApiContext, soql: str, include_deleted: bool, batch_size: int) -> dict[str, Any]:
    backend = ctx.backend
    query, compiled = compile_soql(
        backend.store, soql, include_deleted=include_deleted, today=backend.today()
    )
    if compiled.count_only:
        return {"totalSize": run_count(backend.store, compiled, query), "done": True, "records": []}
    rows = backend.store.select(compiled.sql, compiled.params)
    if len(rows) <= batch_size:
        return {"totalSize": len(rows), "done": True, "records": shape_records(compiled, rows, ctx.version)}
    locator = backend.open_cursor(
        Cursor(compiled=compiled, rows=rows, batch_size=batch_size, total=len(rows))
    )
    return _query_page(ctx, locator, 0)


def _batch_size(request: Request, default: int) -> int:
    # Sforce-Query-Options: batchSize=N, 200..2000; Salesforce may return fewer (C:SFD).
    header = request.headers.get("sforce-query-options", "")
    match = _BATCH_RE.search(header)
    if not match:
        return default
    return max(200, min(2000, int(match.group(1))))


def data_router() -> APIRouter:
    """Routes under ``/services/data``."""
    router = APIRouter()

    @router.get("/services/data")
    def versions(request: Request) -> list[dict[str, Any]]:
        return [
            {"label": f"v{v}.0", "url": f"/services/data/v{v}.0", "version": f"{v}.0"}
            for v in range(int(MIN_VERSION), int(MAX_VERSION) + 1)
        ]

    @router.get(API_PREFIX)
    def resources(ctx: Api) -> dict[str, str]:
        base = f"/services/data/v{ctx.version}"
        return {
            name: f"{base}/{name}"
            for name in ("sobjects", "query", "queryAll", "limits", "composite", "jobs")
        }

    @router.get(API_PREFIX + "/limits")
    def limits(ctx: Api) -> dict[str, Any]:
        return ctx.backend.limits()

    async def query_endpoint(request: Request, ctx: ApiContext, include_deleted: bool) -> dict[str, Any]:
        soql = request.query_params.get("q")
        if not soql:
            raise ApiError(400, "MALFORMED_QUERY", "A query string has to be specified")
        size = _batch_size(request, ctx.backend.config.query_batch_size)
        return await offload(_run_query, ctx, soql, include_deleted, size)

    @router.get(API_PREFIX + "/query")
    async def query(request: Request, ctx: Api) -> dict[str, Any]:
        return await query_endpoint(request, ctx, False)

    @router.get(API_PREFIX + "/queryAll")
    async def query_all(request: Request, ctx: Api) -> dict[str, Any]:
        return await query_endpoint(request, ctx, True)

    @router.get(API_PREFIX + "/query/{locator}")
    @router.get(API_PREFIX + "/queryAll/{locator}")
    async def query_more(locator: str, ctx: Api) -> dict[str, Any]:
        cursor_id, _, offset = locator.rpartition("-")
        if not cursor_id or not offset.isdigit():
            raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return await offload(_query_page, ctx, cursor_id, int(offset))

    @router.get(API_PREFIX + "/sobjects")
    def describe_global(ctx: Api) -> dict[str, Any]:
        return {
            "encoding": "UTF-8",
            "maxBatchSize": 200,
            "sobjects": [
                describe_object(obj, ctx.version, with_fields=False) for obj in ctx.backend.schemas.values()
            ],
        }

    @router.get(API_PREFIX + "/sobjects/{sobject}")
    def sobject_info(sobject: str, ctx: Api) -> dict[str, Any]:
        obj = ctx.backend.dml.object(sobject)
        return {"objectDescribe": describe_object(obj, ctx.version, with_fields=False), "recentItems": []}

    @router.get(API_PREFIX + "/sobjects/{sobject}/describe")
    def describe(sobject: str, ctx: Api) -> dict[str, Any]:
        return describe_object(ctx.backend.dml.object(sobject), ctx.version, with_fields=True)

    @router.post(API_PREFIX + "/sobjects/{sobject}")
    async def create(sobject: str, request: Request, ctx: Api) -> JSONResponse:
        body = await json_body(request)
        obj = ctx.backend.dml.object(sobject)
        if not isinstance(body, dict):
            raise ApiError(400, "JSON_PARSER_ERROR", "Cannot deserialize instance of sObject from an array")

        def work() -> Any:
            with ctx.backend.store.transaction():
                return ctx.backend.dml.insert(obj, body)

        outcome = await offload(work)
        if not outcome.success:
            raise ApiError.from_errors(400, outcome.errors)
        return JSONResponse({"id": outcome.id, "success": True, "errors": []}, status_code=201)

    @router.get(API_PREFIX + "/sobjects/{sobject}/{record_id}")
    async def read(sobject: str, record_id: str, request: Request, ctx: Api) -> dict[str, Any]:
        obj = ctx.backend.dml.object(sobject)
        fields = _fields_param(obj, request)
        normalised = to_18(record_id)
        if normalised is None or not normalised.startswith(obj.key_prefix):
            raise not_found()
        row = await offload(ctx.backend.store.fetch, obj, normalised)
        if row is None:
            raise not_found()
        if row["IsDeleted"]:
            raise ApiError(404, "ENTITY_IS_DELETED", "entity is deleted")
        return record_json(obj, row, ctx.version, fields)

    @router.patch(API_PREFIX + "/sobjects/{sobject}/{record_id}")
    async def update(sobject: str, record_id: str, request: Request, ctx: Api) -> Response:
        body = await json_body(request)
        obj = ctx.backend.dml.object(sobject)
        if not isinstance(body, dict):
            raise ApiError(400, "JSON_PARSER_ERROR", "Cannot deserialize instance of sObject from an array")

        def work() -> Any:
            with ctx.backend.store.transaction():
                return ctx.backend.dml.update(obj, record_id, body)

        outcome = await offload(work)
        if outcome.missing:
            raise (
                not_found()
                if outcome.errors[0].code != "ENTITY_IS_DELETED"
                else ApiError.from_errors(404, outcome.errors)
            )
        if not outcome.success:
            raise ApiError.from_errors(400, outcome.errors)
        return Response(status_code=204)

    @router.delete(API_PREFIX + "/sobjects/{sobject}/{record_id}")
    async def delete(sobject: str, record_id: str, ctx: Api) -> Response:
        obj = ctx.backend.dml.object(sobject)

        def work() -> Any:
            with ctx.backend.store.transaction():
                return ctx.backend.dml.delete(obj, record_id)

        outcome = await offload(work)
        if outcome.missing:
            raise (
                not_found()
                if outcome.errors[0].code != "ENTITY_IS_DELETED"
                else ApiError.from_errors(404, outcome.errors)
            )
        if not outcome.success:
            raise ApiError.from_errors(400, outcome.errors)
        return Response(status_code=204)

    @router.get(API_PREFIX + "/sobjects/{sobject}/{field}/{value}")
    async def read_by_external_id(
        sobject: str, field: str, value: str, request: Request, ctx: Api
    ) -> Response:
        obj = ctx.backend.dml.object(sobject)
        key = ctx.backend.dml.external_field(obj, field)
        fields = _fields_param(obj, request)
        matches = await offload(ctx.backend.dml.find_by_external, obj, key, value)
        if not matches:
            raise not_found()
        if len(matches) > 1:
            return _multiple_choices(obj, matches, ctx.version)
        row = await offload(ctx.backend.store.fetch, obj, matches[0])
        assert row is not None
        return JSONResponse(record_json(obj, row, ctx.version, fields))

    @router.patch(API_PREFIX + "/sobjects/{sobject}/{field}/{value}")
    async def upsert(sobject: str, field: str, value: str, request: Request, ctx: Api) -> Response:
        body = await json_body(request)
        obj = ctx.backend.dml.object(sobject)
        key = ctx.backend.dml.external_field(obj, field)
        if not isinstance(body, dict):
            raise ApiError(400, "JSON_PARSER_ERROR", "Cannot deserialize instance of sObject from an array")
        update_only = request.query_params.get("updateOnly", "").lower() == "true"

        def work() -> Any:
            with ctx.backend.store.transaction():
                return ctx.backend.dml.upsert(obj, key, value, body, update_only=update_only)

        outcome = await offload(work)
        if outcome.matches:
            return _multiple_choices(obj, outcome.matches, ctx.version)
        if outcome.missing:
            raise not_found()
        if not outcome.success:
            raise ApiError.from_errors(400, outcome.errors)
        modern = ctx.version_number >= 46.0
        if outcome.created:
            body_out: dict[str, Any] = {"id": outcome.id, "success": True, "errors": []}
            if modern:
                body_out["created"] = True
            return JSONResponse(body_out, status_code=201)
        if not modern:
            return Response(status_code=204)
        return JSONResponse({"id": outcome.id, "success": True, "errors": [], "created": False})

    @router.delete(API_PREFIX + "/sobjects/{sobject}/{field}/{value}")
    async def delete_by_external_id(sobject: str, field: str, value: str, ctx: Api) -> Response:
        obj = ctx.backend.dml.object(sobject)
        key = ctx.backend.dml.external_field(obj, field)
        matches = await offload(ctx.backend.dml.find_by_external, obj, key, value)
        if not matches:
            raise not_found()
        if len(matches) > 1:
            return _multiple_choices(obj, matches, ctx.version)

        def work() -> Any:
            with ctx.backend.store.transaction():
                return ctx.backend.dml.delete(obj, matches[0])

        outcome = await offload(work)
        if not outcome.success:
            raise ApiError.from_errors(400, outcome.errors)
        return Response(status_code=204)

    return router


def _fields_param(obj: ObjectSchema, request: Request) -> list[str] | None:
    raw = request.query_params.get("fields")
    if not raw:
        return None
    names = []
    for name in (n.strip() for n in raw.split(",") if n.strip()):
        f = obj.field(name)
        if f is None:
            raise ApiError(400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {obj.name}")
        names.append(f.name)
    return names


def _multiple_choices(obj: ObjectSchema, ids: list[str], version: str) -> JSONResponse:
    return JSONResponse([f"/services/data/v{version}/sobjects/{obj.name}/{i}" for i in ids], status_code=300)

"""sObject Collections: ``/composite/sobjects`` create, update, upsert and delete (≤ 200 records)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from sandbox.salesforce.api import API_PREFIX, ApiContext, api_context, json_body, offload
from sandbox.salesforce.dml import Outcome
from sandbox.salesforce.errors import ApiError, SfError, not_found
from sandbox.salesforce.schema import FieldSchema, ObjectSchema

Api = Annotated[ApiContext, Depends(api_context)]
MAX_RECORDS = 200
ROLLED_BACK = SfError(
    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "Record rolled back because not all records were valid and the request was using AllOrNone header",
)


def _too_many() -> ApiError:
    return ApiError(
        400, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than 200 records into this call"
    )


def _records(body: Any) -> tuple[list[dict[str, Any]], bool]:
    if not isinstance(body, dict) or not isinstance(body.get("records"), list):
        raise ApiError(400, "JSON_PARSER_ERROR", "The request body must be an object with a 'records' array")
    records = body["records"]
    if len(records) > MAX_RECORDS:
        raise _too_many()
    if not records:
        raise ApiError(400, "INVALID_FIELD", "No records to process")
    all_or_none = body.get("allOrNone", False)
    if not isinstance(all_or_none, bool):
        raise ApiError(400, "JSON_PARSER_ERROR", "allOrNone must be a boolean")
    for record in records:
        if not isinstance(record, dict):
            raise ApiError(400, "JSON_PARSER_ERROR", "Each record must be a JSON object")
    return records, all_or_none


def _record_type(ctx: ApiContext, record: dict[str, Any]) -> ObjectSchema:
    attributes = record.get("attributes")
    if not isinstance(attributes, dict) or not attributes.get("type"):
        raise ApiError(400, "INVALID_TYPE", "Must send a concrete entity type.")
    try:
        return ctx.backend.dml.object(str(attributes["type"]))
    except ApiError:
        raise ApiError(
            400, "INVALID_TYPE", f"sObject type '{attributes['type']}' is not supported."
        ) from None


def _result(outcome: Outcome, *, with_created: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": outcome.id,
        "success": outcome.success,
        "errors": [error.as_row() for error in outcome.errors],
    }
    if with_created:
        body["created"] = outcome.created if outcome.success else False
    return body


def _run_rows(ctx: ApiContext, operations: list[Callable[[], Outcome]], all_or_none: bool) -> list[Outcome]:
    """Apply each row; with allOrNone, undo everything when any row fails."""
    store = ctx.backend.store
    outcomes: list[Outcome] = []
    with store.transaction():
        store.db.execute("SAVEPOINT collection")
        for operation in operations:
            outcomes.append(operation())
        if all_or_none and not all(o.success for o in outcomes):
            store.rollback_to("collection")
            ctx.backend.dml.reset()
            outcomes = [
                Outcome(id=None, success=False, errors=[ROLLED_BACK])
                if o.success
                else Outcome(id=None, success=False, errors=o.errors)
                for o in outcomes
            ]
        store.db.execute("RELEASE collection")
    return outcomes


def collections_router() -> APIRouter:
    """Routes under ``/composite/sobjects``."""
    router = APIRouter()

    @router.post(API_PREFIX + "/composite/sobjects")
    async def create(request: Request, ctx: Api) -> list[dict[str, Any]]:
        records, all_or_none = _records(await json_body(request))
        dml = ctx.backend.dml
        plans = []
        for record in records:
            obj = _record_type(ctx, record)
            fields = dml.resolve_fields(obj, record)
            plans.append((obj, record, fields))

        def work() -> list[Outcome]:
            ops = [(lambda p=plan: dml.insert(p[0], p[1], fields=p[2])) for plan in plans]
            return _run_rows(ctx, ops, all_or_none)

        return [_result(o, with_created=False) for o in await offload(work)]

    @router.patch(API_PREFIX + "/composite/sobjects")
    async def update(request: Request, ctx: Api) -> list[dict[str, Any]]:
        records, all_or_none = _records(await json_body(request))
        dml = ctx.backend.dml
        plans = []
        for record in records:
            obj = _record_type(ctx, record)
            fields = dml.resolve_fields(obj, record)
            plans.append((obj, record, fields))

        def one(obj: ObjectSchema, record: dict[str, Any], fields: dict[str, FieldSchema]) -> Outcome:
            record_id = next((v for k, v in record.items() if k.lower() == "id"), None)
            if not record_id:
                return Outcome.fail(SfError("MISSING_ARGUMENT", "Id not specified in an update call", []))
            return dml.update(obj, str(record_id), record, fields=fields)

        def work() -> list[Outcome]:
            ops = [(lambda p=plan: one(*p)) for plan in plans]
            return _run_rows(ctx, ops, all_or_none)

        return [_result(o, with_created=False) for o in await offload(work)]

    @router.patch(API_PREFIX + "/composite/sobjects/{sobject}/{field}")
    async def upsert(sobject: str, field: str, request: Request, ctx: Api) -> list[dict[str, Any]]:
        if ctx.version_number < 46.0:
            raise not_found()
        records, all_or_none = _records(await json_body(request))
        dml = ctx.backend.dml
        obj = dml.object(sobject)
        key = obj.field(field)
        if key is None or not (key.external_id or key.name == "Id"):
            raise ApiError(
                400,
                "INVALID_FIELD",
                f"Field name provided, {field} is not an External ID or indexed field for {obj.name}",
            )
        plans = []
        for record in records:
            record_obj = _record_type(ctx, record)
            if record_obj.name != obj.name:
                raise ApiError(400, "INVALID_TYPE", f"All records must be of type {obj.name}")
            plans.append((record, dml.resolve_fields(obj, record)))
        values = [next((v for k, v in r.items() if k.lower() == key.name.lower()), None) for r, _ in plans]
        counts = Counter(str(v).lower() for v in values if v not in (None, ""))

        def one(record: dict[str, Any], fields: dict[str, FieldSchema], value: Any) -> Outcome:
            if value in (None, ""):
                return Outcome.fail(SfError("MISSING_ARGUMENT", f"{key.name} not specified", [key.name]))
            if counts[str(value).lower()] > 1:
                return Outcome.fail(
                    SfError("DUPLICATE_EXTERNAL_ID", f"Duplicate external id specified: {value}", [key.name])
                )
            return dml.upsert(obj, key, value, record, fields=fields)

        def work() -> list[Outcome]:
            ops = [
                (lambda p=plan, v=value: one(p[0], p[1], v))
                for plan, value in zip(plans, values, strict=True)
            ]
            return _run_rows(ctx, ops, all_or_none)

        return [_result(o, with_created=True) for o in await offload(work)]

    @router.delete(API_PREFIX + "/composite/sobjects")
    async def delete(request: Request, ctx: Api) -> list[dict[str, Any]]:
        raw_ids = request.query_params.get("ids", "")
        ids = [i.strip() for i in raw_ids.split(",") if i.strip()]
        if not ids:
            raise ApiError(400, "MISSING_ARGUMENT", "ids parameter is required")
        if len(ids) > MAX_RECORDS:
            raise _too_many()
        all_or_none = request.query_params.get("allOrNone", "false").lower() == "true"
        dml = ctx.backend.dml

        def one(record_id: str) -> Outcome:
            obj = next((o for o in ctx.backend.schemas.values() if record_id.startswith(o.key_prefix)), None)
            if obj is None:
                return Outcome.fail(
                    SfError("MALFORMED_ID", f"malformed id {record_id}", []), record_id=record_id
                )
            outcome = dml.delete(obj, record_id)
            if outcome.id is None:
                outcome.id = record_id
            return outcome

        def work() -> list[Outcome]:
            return _run_rows(ctx, [(lambda i=i: one(i)) for i in ids], all_or_none)

        outcomes = await offload(work)
        results = []
        for record_id, outcome in zip(ids, outcomes, strict=True):
            result = _result(outcome, with_created=False)
            result["id"] = outcome.id if outcome.success else (outcome.id or record_id)
            results.append(result)
        return results

    return router

"""sObject Collections requests (up to 200 records per call) and their per-record results.

Pure builders: the hook sends what :func:`collection_request` describes and hands the body
to :func:`collection_results`. Collections answer in request order ("sObject Collections",
REST API guide), and the response carries no key, so results are matched by position here;
Bulk results, which are unordered, are matched by key instead (salesforce_bulk).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from crm_sync.exceptions import FatalApiError
from crm_sync.hooks.salesforce_types import RecordResult

__all__ = ["COLLECTION_SIZE", "CollectionRequest", "Operation", "collection_request", "collection_results"]

COLLECTION_SIZE = 200
Operation = Literal["insert", "update", "upsert", "delete"]


@dataclass(frozen=True, slots=True)
class CollectionRequest:
    """One Collections call: method, path under ``/services/data/vXX.X/``, body or params."""

    method: str
    path: str
    idempotent: bool
    json: dict[str, Any] | None = None
    params: dict[str, str] | None = None


def collection_request(
    operation: Operation,
    sobject: str,
    rows: Sequence[tuple[str, Mapping[str, Any]]],
    external_id_field: str | None = None,
) -> CollectionRequest:
    """Describe the Collections call for ``rows`` (``(key, wire record)`` pairs, at most 200).

    ``allOrNone`` is false so one bad record does not roll back the others. Upsert and
    update are marked idempotent (the same PATCH twice leaves the same record, so a lost
    response may be retried); insert is not: a retried POST whose first response was lost
    would create duplicates (Data Loader stopped retrying inserts for this, anchors.md 3.2).
    """
    if not 0 < len(rows) <= COLLECTION_SIZE:
        raise ValueError(f"a collection holds 1 to {COLLECTION_SIZE} records, not {len(rows)}")
    if operation == "delete":
        return CollectionRequest(
            "DELETE",
            "composite/sobjects",
            idempotent=True,
            params={"ids": ",".join(key for key, _ in rows), "allOrNone": "false"},
        )
    records = [{"attributes": {"type": sobject}, **record} for _, record in rows]
    body = {"allOrNone": False, "records": records}
    if operation == "upsert":
        if not external_id_field:
            raise ValueError("upsert needs an external id field")
        return CollectionRequest(
            "PATCH", f"composite/sobjects/{sobject}/{external_id_field}", idempotent=True, json=body
        )
    if operation == "update":
        return CollectionRequest("PATCH", "composite/sobjects", idempotent=True, json=body)
    return CollectionRequest("POST", "composite/sobjects", idempotent=False, json=body)


def _one(operation: Operation, key: str, item: Mapping[str, Any]) -> RecordResult:
    """Map one Collections save result."""
    created = item.get("created")
    if created is None:
        created = {"insert": True, "update": False}.get(operation)
    if item.get("success"):
        return RecordResult(
            key=key, id=item.get("id"), created=bool(created) if created is not None else None, success=True
        )
    errors = item.get("errors") or []
    codes = [str(e.get("statusCode") or e.get("errorCode") or "UNKNOWN_ERROR") for e in errors]
    if operation == "delete" and codes and set(codes) == {"ENTITY_IS_DELETED"}:
        # Already deleted (e.g. the first attempt's response was lost): the goal is reached.
        return RecordResult(
            key=key, id=item.get("id") or key, created=None, success=True, message="already deleted"
        )
    message = "; ".join(str(e.get("message", "")) for e in errors) or "no error detail"
    fields = tuple(dict.fromkeys(f for e in errors for f in (e.get("fields") or ())))
    return RecordResult(
        key=key,
        id=item.get("id"),
        created=None,
        success=False,
        error_code=codes[0] if codes else "UNKNOWN_ERROR",
        message=message,
        fields=fields,
    )


def collection_results(operation: Operation, keys: Sequence[str], body: Any) -> list[RecordResult]:
    """Map a Collections response body (one save result per record, in order) to results.

    Raises:
        FatalApiError: when the body is not one result per record.
    """
    if not isinstance(body, list) or len(body) != len(keys):
        got = len(body) if isinstance(body, list) else type(body).__name__
        raise FatalApiError(
            f"salesforce collections {operation}: expected {len(keys)} results, got {got}",
            code="BAD_RESPONSE",
        )
    return [_one(operation, key, item) for key, item in zip(keys, body, strict=True)]

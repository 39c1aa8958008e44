"""Preparing records for a Salesforce write and turning write results into engine outcomes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from crm_sync.exceptions import QuotaExhausted, RetriableApiError
from crm_sync.hooks import soql
from crm_sync.hooks.salesforce_types import (
    OUTCOME_UNKNOWN,
    QUOTA_EXHAUSTED,
    SERVER_UNAVAILABLE,
    RecordResult,
    to_wire,
)
from crm_sync.http import READ_ERROR
from crm_sync.sync.records import Change, Outcome

__all__ = ["Prepared", "outcome_for", "prepare_rows", "stopped_results", "unsent_code"]

Prepared = tuple[list[str], dict[int, RecordResult], list[tuple[str, dict[str, Any]]]]
"""The key of each input, results decided without a call (by input index), rows to send."""


def prepare_rows(
    records: Sequence[Mapping[str, Any]],
    *,
    key_field: str,
    key_of: Callable[[Mapping[str, Any]], Any],
    duplicate_code: str,
    ids: bool = False,
    field_ok: Callable[[str, Any], bool] | None = None,
) -> Prepared:
    """Key each record, convert its values for the wire and reject what cannot be sent.

    Rejected without a call: a missing key (REQUIRED_FIELD_MISSING), a key seen twice in
    the batch (``duplicate_code``: results are matched by key, so keys must be unique), a
    malformed Id (MALFORMED_ID), a field ``field_ok`` refuses (INVALID_FIELD, which
    Salesforce would answer for the whole call) and a value with no wire form (INVALID_VALUE).
    """
    keys = ["" if key_of(r) is None else str(key_of(r)) for r in records]
    counts = Counter(keys)
    early: dict[int, RecordResult] = {}
    rows: list[tuple[str, dict[str, Any]]] = []
    for index, (key, record) in enumerate(zip(keys, records, strict=True)):
        problem = _key_problem(index, key, counts[key], key_field, duplicate_code, ids=ids)
        if problem is None and field_ok is not None:
            unknown = [name for name, value in record.items() if not field_ok(name, value)]
            if unknown:
                problem = RecordResult.failure(
                    key,
                    "INVALID_FIELD",
                    f"no such field on this object: {', '.join(unknown)}",
                    tuple(unknown),
                )
        if problem is None:
            wire, problem = _wire(key, key_field, record)
            if problem is None:
                rows.append((key, wire))
        if problem is not None:
            early[index] = problem
    return keys, early, rows


def _key_problem(
    index: int, key: str, count: int, key_field: str, duplicate_code: str, *, ids: bool
) -> RecordResult | None:
    """Why a record's key makes it unsendable, or None."""
    if not key:
        return RecordResult.failure(
            key, "REQUIRED_FIELD_MISSING", f"record #{index} has no {key_field}", (key_field,)
        )
    if count > 1:
        return RecordResult.failure(
            key, duplicate_code, f"{key_field} {key!r} appears {count} times in this batch", (key_field,)
        )
    if ids:
        try:
            soql.validate_sf_id(key)
        except (TypeError, ValueError) as exc:
            return RecordResult.failure(key, "MALFORMED_ID", str(exc), ("Id",))
    return None


def _wire(key: str, key_field: str, record: Mapping[str, Any]) -> tuple[dict[str, Any], RecordResult | None]:
    """The record as the API takes it, or the result rejecting it."""
    wire: dict[str, Any] = {}
    for name, value in record.items():
        try:
            wire[name] = key if name == key_field else to_wire(value)
        except (TypeError, ValueError) as exc:
            return {}, RecordResult.failure(key, "INVALID_VALUE", f"field {name}: {exc}", (name,))
    return wire, None


def unsent_code(exc: QuotaExhausted | RetriableApiError) -> tuple[str, str]:
    """The result code and reason for records a failing call kept from being written.

    Quota: Salesforce's own code when Salesforce refused, ours when our budget did.
    """
    if isinstance(exc, QuotaExhausted):
        return getattr(exc, "sf_code", None) or QUOTA_EXHAUSTED, "API quota exhausted"
    return SERVER_UNAVAILABLE, f"the API kept failing ({exc.code or exc.status})"


def stopped_results(
    operation: str, sent: Sequence[str], later: Sequence[str], exc: QuotaExhausted | RetriableApiError
) -> dict[str, RecordResult]:
    """Results for the records of a call that failed for good, and of those never sent after it.

    A lost response to an insert means its records may exist: they come back OUTCOME_UNKNOWN
    and are not resent (insert is not idempotent). Otherwise nothing was written: parked
    when a quota ran out, SERVER_UNAVAILABLE when the API kept failing.
    """
    code, why = unsent_code(exc)
    lost = operation == "insert" and isinstance(exc, RetriableApiError) and exc.code == READ_ERROR
    out = {
        key: RecordResult.failure(key, OUTCOME_UNKNOWN, "response lost: the record may exist; not resent")
        if lost
        else RecordResult.failure(key, code, f"not sent: {why}")
        for key in sent
    }
    out.update({key: RecordResult.failure(key, code, f"not sent: {why}") for key in later})
    return out


def outcome_for(change: Change, result: RecordResult) -> Outcome:
    """The engine's outcome of ``change`` given its write result."""
    if result.success:
        return Outcome.ok(change, target_id=result.id or change.target_id)
    code, message = result.error_code or "UNKNOWN_ERROR", result.message or ""
    if result.parked:
        return Outcome.parked(change, code, message)
    if result.transient:
        return Outcome.failed(change, code, message)
    return Outcome.rejected(change, code, message, field=result.fields[0] if result.fields else None)

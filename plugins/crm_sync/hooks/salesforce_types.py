"""Typed results of the Salesforce hook and the pure helpers that build them."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

__all__ = [
    "PARKED_CODES",
    "RETRY_CODES",
    "TRANSIENT_CODES",
    "ApiCalls",
    "ApiLimit",
    "FieldInfo",
    "RecordResult",
    "SObjectDescription",
    "parse_sf_error",
    "to_wire",
]

UNPROCESSED = "UNPROCESSED"
"""Our code for a row a Bulk job left in ``unprocessedrecords`` (or never reported on)."""
OUTCOME_UNKNOWN = "OUTCOME_UNKNOWN"
"""Our code for a non-idempotent write whose response was lost: it may or may not exist."""
QUOTA_EXHAUSTED = "QUOTA_EXHAUSTED"
"""Our code for a record not sent because our own API budget is spent."""
REQUEST_LIMIT_EXCEEDED = "REQUEST_LIMIT_EXCEEDED"
"""Salesforce's code when the org's daily API allowance is spent (HTTP 403)."""
SERVER_UNAVAILABLE = "SERVER_UNAVAILABLE"
"""Our code for records not written because the API kept failing (5xx, 429, no connection)."""

RETRY_CODES = frozenset({"UNABLE_TO_LOCK_ROW", UNPROCESSED})
"""Per-row outcomes resubmitted within the same call (bounded, with backoff)."""
PARKED_CODES = frozenset({QUOTA_EXHAUSTED, REQUEST_LIMIT_EXCEEDED})
"""Per-row outcomes meaning "not sent, quota spent": parked until the quota resets."""
TRANSIENT_CODES = RETRY_CODES | {OUTCOME_UNKNOWN, SERVER_UNAVAILABLE, "BULK_JOB_TIMEOUT", "BULK_JOB_FAILED"}
"""Per-row failures the next run should retry (state untouched) rather than reject."""


@dataclass(frozen=True, slots=True)
class RecordResult:
    """The outcome of writing one input record, whichever API carried it.

    ``key`` is the external id value (upsert), the Id (update, delete) or the ``key_field``
    value (insert). ``created`` is None when the API does not say (update, delete, failures).
    """

    key: str
    id: str | None
    created: bool | None
    success: bool
    error_code: str | None = None
    message: str | None = None
    fields: tuple[str, ...] = ()

    @property
    def parked(self) -> bool:
        """Whether the record was not sent because an API quota ran out."""
        return self.error_code in PARKED_CODES

    @property
    def transient(self) -> bool:
        """Whether the failure is worth retrying on the next run (not a rejection)."""
        return self.error_code in TRANSIENT_CODES

    @classmethod
    def failure(cls, key: str, code: str, message: str, fields: tuple[str, ...] = ()) -> RecordResult:
        """Build a failed result."""
        return cls(
            key=key, id=None, created=None, success=False, error_code=code, message=message, fields=fields
        )


@dataclass(frozen=True, slots=True)
class FieldInfo:
    """One field of an sObject, as ``describe`` reports it."""

    name: str
    type: str
    nillable: bool = True
    createable: bool = True
    updateable: bool = True
    external_id: bool = False
    length: int | None = None
    relationship_name: str | None = None
    reference_to: tuple[str, ...] = ()


@dataclass(frozen=True)
class SObjectDescription:
    """An sObject's fields by name (lookups are case-insensitive, like Salesforce's)."""

    name: str
    fields: Mapping[str, FieldInfo]
    _by_lower: dict[str, FieldInfo] = field(init=False, repr=False, compare=False)
    _by_relationship: dict[str, FieldInfo] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_lower", {k.lower(): v for k, v in self.fields.items()})
        rels = {f.relationship_name.lower(): f for f in self.fields.values() if f.relationship_name}
        object.__setattr__(self, "_by_relationship", rels)

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> SObjectDescription:
        """Build from the body of ``GET /sobjects/{name}/describe``."""
        fields = {}
        for raw in body.get("fields", []):
            info = FieldInfo(
                name=raw["name"],
                type=str(raw.get("type", "string")),
                nillable=bool(raw.get("nillable", True)),
                createable=bool(raw.get("createable", True)),
                updateable=bool(raw.get("updateable", True)),
                external_id=bool(raw.get("externalId", False)),
                length=raw.get("length"),
                relationship_name=raw.get("relationshipName"),
                reference_to=tuple(raw.get("referenceTo") or ()),
            )
            fields[info.name] = info
        return cls(name=str(body.get("name", "")), fields=fields)

    def field(self, name: str) -> FieldInfo | None:
        """The field called ``name`` (any case), or None."""
        return self._by_lower.get(name.lower())

    def relationship(self, name: str) -> FieldInfo | None:
        """The lookup field whose relationship is called ``name`` (``Account``), or None."""
        return self._by_relationship.get(name.lower())


@dataclass(frozen=True, slots=True)
class ApiLimit:
    """One entry of ``GET /limits``."""

    max: int
    remaining: int

    @property
    def used(self) -> int:
        """How much of the allowance is spent."""
        return self.max - self.remaining


@dataclass
class ApiCalls:
    """Requests made by one hook, by kind (every HTTP attempt, retries included)."""

    auth: int = 0
    rest: int = 0
    collections: int = 0
    bulk: int = 0

    @property
    def total(self) -> int:
        """All requests."""
        return self.auth + self.rest + self.collections + self.bulk

    def add(self, kind: str, n: int = 1) -> None:
        """Count ``n`` requests of ``kind``."""
        setattr(self, kind, getattr(self, kind) + n)

    def as_dict(self) -> dict[str, int]:
        """``{"total": n, "auth": n, "rest": n, "collections": n, "bulk": n}`` for run summaries."""
        return {
            "total": self.total,
            "auth": self.auth,
            "rest": self.rest,
            "collections": self.collections,
            "bulk": self.bulk,
        }


_ERROR_CODE = re.compile(r"[A-Z][A-Z0-9_]*")
_FIELD_LIST = re.compile(r"[A-Za-z][A-Za-z0-9_.]*(?:\s*[,;]\s*[A-Za-z][A-Za-z0-9_.]*)*")


def parse_sf_error(text: str) -> tuple[str, str, tuple[str, ...]]:
    """Split a Bulk ``sf__Error`` value into ``(code, message, fields)``.

    The format is ``CODE:message:field1,field2 --`` where the message may itself hold colons
    and the field list may be empty (Bulk API 2.0 failedResults; the trailing `` --`` marks
    the end of one error).
    """
    body = text.strip()
    if body.endswith("--"):
        body = body[:-2].rstrip()
    code, sep, rest = body.partition(":")
    if not sep or not _ERROR_CODE.fullmatch(code):
        return "UNKNOWN_ERROR", text.strip(), ()
    message, sep, tail = rest.rpartition(":")
    if sep and (not tail.strip() or _FIELD_LIST.fullmatch(tail.strip())):
        fields = tuple(f.strip() for f in re.split(r"[,;]", tail) if f.strip())
        return code, message.strip(), fields
    return code, rest.strip(), ()


def to_wire(value: Any) -> Any:
    """Convert a payload value to what the Salesforce JSON API takes.

    ``None`` and ``""`` both mean "clear the field" (Salesforce stores no empty strings). A
    mapping is a parent referenced by its external id, e.g. ``{"Account": {"Ext__c": "A1"}}``.

    Raises:
        ValueError: for a naive datetime (its instant is ambiguous) or a non-finite number.
        TypeError: for a value with no JSON form.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float | Decimal):
        if not math.isfinite(value):
            raise ValueError("not a finite number")
        if isinstance(value, Decimal):
            return int(value) if value == value.to_integral_value() else float(value)
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime: give datetimes a timezone")
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(name): to_wire(inner) for name, inner in value.items()}
    raise TypeError(f"no Salesforce value for type {type(value).__name__}")

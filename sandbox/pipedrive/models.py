"""Pipedrive entities as the emulator stores and renders them (api-contracts.md section 3.3).

Records are kept in their v2 shape: standard keys at the top level, custom field values under
``custom_fields`` keyed by the field's 40-character hex hash. Timestamps are RFC 3339 UTC
(``2026-11-25T10:00:00Z``), as v2 renders them.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

ENTITIES = ("persons", "organizations", "deals", "activities")
#: v1 fields endpoint -> entity (``/v1/personFields``).
FIELD_ENDPOINTS = {
    "personFields": "persons",
    "organizationFields": "organizations",
    "dealFields": "deals",
    "activityFields": "activities",
}
#: Singular names, as webhooks and error messages use them.
SINGULAR = {"persons": "person", "organizations": "organization", "deals": "deal", "activities": "activity"}
FIELD_TYPES = (
    "address",
    "date",
    "daterange",
    "double",
    "enum",
    "monetary",
    "org",
    "people",
    "phone",
    "set",
    "text",
    "time",
    "timerange",
    "user",
    "varchar",
    "varchar_auto",
    "visible_to",
)
#: Custom field types whose values the search API matches (strings and numbers).
SEARCHABLE_TYPES = frozenset({"varchar", "varchar_auto", "text", "double", "phone", "address", "monetary"})
#: Keys every rendered record of the entity carries (None when unset).
RENDERED: dict[str, tuple[str, ...]] = {
    "persons": (
        "name",
        "first_name",
        "last_name",
        "owner_id",
        "org_id",
        "emails",
        "phones",
        "visible_to",
        "label_ids",
        "marketing_status",
        "job_title",
    ),
    "organizations": ("name", "owner_id", "visible_to", "label_ids", "address"),
    "deals": (
        "title",
        "owner_id",
        "person_id",
        "org_id",
        "pipeline_id",
        "stage_id",
        "value",
        "currency",
        "status",
        "probability",
        "lost_reason",
        "expected_close_date",
        "visible_to",
        "label_ids",
        "is_archived",
        "close_time",
        "won_time",
        "lost_time",
        "stage_change_time",
    ),
    "activities": (
        "subject",
        "type",
        "owner_id",
        "deal_id",
        "lead_id",
        "person_id",
        "org_id",
        "due_date",
        "due_time",
        "duration",
        "busy",
        "done",
        "marked_as_done_time",
        "participants",
        "attendees",
        "note",
        "priority",
        "location",
        "public_description",
    ),
}
#: Keys set by the server only.
READ_ONLY = frozenset({"stage_change_time", "marked_as_done_time"})
#: Writable v2 keys per entity (besides ``custom_fields``); ``add_time`` may be back-dated on create.
WRITABLE: dict[str, frozenset[str]] = {
    entity: frozenset(keys) - READ_ONLY | ({"add_time"} if entity != "activities" else set())
    for entity, keys in RENDERED.items()
}
#: Standard fields listed by the v1 *Fields endpoints: (key, name, field_type, mandatory).
STANDARD_FIELDS: dict[str, tuple[tuple[str, str, str, bool], ...]] = {
    "persons": (
        ("name", "Name", "varchar", True),
        ("first_name", "First name", "varchar", False),
        ("last_name", "Last name", "varchar", False),
        ("owner_id", "Owner", "user", False),
        ("org_id", "Organization", "org", False),
        ("email", "Email", "varchar", False),
        ("phone", "Phone", "phone", False),
        ("job_title", "Job title", "varchar", False),
        ("marketing_status", "Marketing status", "enum", False),
        ("visible_to", "Visible to", "visible_to", False),
        ("add_time", "Person created", "date", False),
        ("update_time", "Update time", "date", False),
    ),
    "organizations": (
        ("name", "Name", "varchar", True),
        ("owner_id", "Owner", "user", False),
        ("address", "Address", "address", False),
        ("visible_to", "Visible to", "visible_to", False),
        ("add_time", "Organization created", "date", False),
        ("update_time", "Update time", "date", False),
    ),
    "deals": (
        ("title", "Title", "varchar", True),
        ("value", "Value", "monetary", False),
        ("currency", "Currency", "varchar", False),
        ("owner_id", "Owner", "user", False),
        ("person_id", "Contact person", "people", False),
        ("org_id", "Organization", "org", False),
        ("pipeline_id", "Pipeline", "double", False),
        ("stage_id", "Stage", "double", False),
        ("status", "Status", "enum", False),
        ("probability", "Probability", "double", False),
        ("lost_reason", "Lost reason", "varchar", False),
        ("expected_close_date", "Expected close date", "date", False),
        ("close_time", "Deal closed on", "date", False),
        ("won_time", "Won time", "date", False),
        ("lost_time", "Lost time", "date", False),
        ("add_time", "Deal created", "date", False),
        ("update_time", "Update time", "date", False),
    ),
    "activities": (
        ("subject", "Subject", "varchar", True),
        ("type", "Type", "enum", True),
        ("due_date", "Due date", "date", False),
        ("due_time", "Due time", "time", False),
        ("duration", "Duration", "time", False),
        ("owner_id", "Assigned to user", "user", False),
        ("person_id", "Contact person", "people", False),
        ("org_id", "Organization", "org", False),
        ("deal_id", "Deal", "double", False),
        ("note", "Note", "text", False),
        ("done", "Done", "enum", False),
    ),
}
ACTIVITY_TYPES = ("call", "meeting", "task", "deadline", "email", "lunch")
DEAL_STATUSES = ("open", "won", "lost")
MARKETING_STATUSES = ("no_consent", "unsubscribed", "subscribed", "archived")
VISIBLE_TO = (1, 3, 5, 7)
HASH_RE = re.compile(r"^[0-9a-f]{40}$")
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
HHMM_RE = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def new_hash() -> str:
    """A fresh random 40-character hex key, as Pipedrive gives every custom field."""
    return secrets.token_hex(20)


def rfc3339(value: datetime | None) -> str | None:
    """``2026-11-25T10:00:00Z`` (v2 timestamps have whole seconds)."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def v1_time(value: datetime | None) -> str | None:
    """``2026-11-25 10:00:00`` (v1 timestamps, UTC)."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def parse_rfc3339(value: str) -> datetime:
    """Parse an RFC 3339 timestamp; a value without an offset is refused, as v2 requires one.

    Raises:
        ValueError: not RFC 3339.
    """
    text = value.strip()
    if not re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$", text):
        raise ValueError(f"{value!r} is not an RFC 3339 timestamp")
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed.astimezone(UTC)


def is_date(value: Any) -> bool:
    """Whether ``value`` is a ``YYYY-MM-DD`` string of a real date."""
    if not isinstance(value, str) or not DATE_RE.match(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


@dataclass
class FieldDef:
    """One entity field as the v1 *Fields endpoints list it."""

    id: int
    key: str
    name: str
    field_type: str
    is_custom: bool
    mandatory: bool = False
    options: list[dict[str, Any]] = field(default_factory=list)
    add_time: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        """The v1 field object."""
        return {
            "id": self.id,
            "key": self.key,
            "name": self.name,
            "field_type": self.field_type,
            "options": self.options or None,
            "edit_flag": self.is_custom,
            "active_flag": True,
            "mandatory_flag": self.mandatory,
            "bulk_edit_allowed": True,
            "add_time": v1_time(self.add_time),
            "update_time": v1_time(self.add_time),
            "add_visible_flag": True,
        }


@dataclass
class Record:
    """One stored entity: its v2 values, custom field values and bookkeeping."""

    id: int
    values: dict[str, Any]
    custom: dict[str, Any]
    add_time: datetime
    update_time: datetime
    deleted: bool = False
    deleted_time: datetime | None = None

    def to_json(self, entity: str, custom_keys: list[str]) -> dict[str, Any]:
        """The v2 object; every custom field of the entity appears (null when unset)."""
        body: dict[str, Any] = {"id": self.id}
        for key in RENDERED[entity]:
            value = self.values.get(key)
            if key in {"emails", "phones", "label_ids", "participants", "attendees"} and value is None:
                value = []
            body[key] = value
        body["add_time"] = rfc3339(self.add_time)
        body["update_time"] = rfc3339(self.update_time)
        body["is_deleted"] = self.deleted
        if entity != "activities":
            body["custom_fields"] = {key: self.custom.get(key) for key in custom_keys}
        return body

"""Validation of v2 write bodies: strict types as v2 requires (no string-to-number coercion).

api-contracts.md section 3.1: booleans only true/false, numbers never as strings, RFC 3339
timestamps, custom fields under ``custom_fields`` keyed by their hash.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sandbox.pipedrive.errors import bad_request
from sandbox.pipedrive.models import (
    ACTIVITY_TYPES,
    DEAL_STATUSES,
    HHMM_RE,
    MARKETING_STATUSES,
    VISIBLE_TO,
    WRITABLE,
    FieldDef,
    is_date,
    parse_rfc3339,
)

Exists = Callable[[str, int], bool]
"""``exists(entity, id)``: whether a live record (or user, pipeline, stage) has that id."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _contacts(key: str, value: Any) -> list[dict[str, Any]]:
    """``emails`` / ``phones``: ``[{value, primary, label}]``."""
    if not isinstance(value, list):
        raise bad_request(f"'{key}' must be an array")
    cleaned = []
    for index, item in enumerate(value):
        if not isinstance(item, Mapping) or not isinstance(item.get("value"), str):
            raise bad_request(f"'{key}[{index}].value' must be a string")
        primary = item.get("primary", index == 0)
        if not isinstance(primary, bool):
            raise bad_request(f"'{key}[{index}].primary' must be a boolean")
        cleaned.append(
            {"value": item["value"], "primary": primary, "label": str(item.get("label") or "work")}
        )
    return cleaned


def _reference(key: str, value: Any, target: str, exists: Exists) -> int | None:
    if value is None:
        return None
    if not _is_int(value):
        raise bad_request(f"'{key}' must be an integer")
    if not exists(target, value):
        raise bad_request(f"'{key}' {value} does not exist")
    return int(value)


_REFERENCES = {
    "owner_id": "users",
    "org_id": "organizations",
    "person_id": "persons",
    "deal_id": "deals",
    "pipeline_id": "pipelines",
    "stage_id": "stages",
}


def _standard(entity: str, key: str, value: Any, exists: Exists) -> Any:
    """Validate one standard key; return the value to store."""
    if key in _REFERENCES:
        return _reference(key, value, _REFERENCES[key], exists)
    if key in {"emails", "phones"}:
        return _contacts(key, value)
    if key in {"name", "title", "first_name", "last_name"} and value is not None:
        if not isinstance(value, str):
            raise bad_request(f"'{key}' must be a string")
        return value
    if key in {"is_archived", "busy", "done"}:
        if not isinstance(value, bool):
            raise bad_request(f"'{key}' must be a boolean")
        return value
    if key in {"value", "probability"} and value is not None and not _is_number(value):
        raise bad_request(f"'{key}' must be a number")
    if key == "visible_to" and value is not None and value not in VISIBLE_TO:
        raise bad_request(f"'visible_to' must be one of {list(VISIBLE_TO)}")
    if key == "label_ids" and not (isinstance(value, list) and all(_is_int(v) for v in value)):
        raise bad_request("'label_ids' must be an array of integers")
    if key == "status" and value not in DEAL_STATUSES:
        raise bad_request(f"'status' must be one of {list(DEAL_STATUSES)}")
    if key == "marketing_status" and value not in MARKETING_STATUSES:
        raise bad_request(f"'marketing_status' must be one of {list(MARKETING_STATUSES)}")
    if key == "type" and value not in ACTIVITY_TYPES:
        raise bad_request(f"'type' must be one of the activity types {list(ACTIVITY_TYPES)}")
    if key in {"expected_close_date", "due_date"} and value is not None and not is_date(value):
        raise bad_request(f"'{key}' must be a date in YYYY-MM-DD format")
    if (
        key in {"due_time", "duration"}
        and value is not None
        and not (isinstance(value, str) and HHMM_RE.match(value))
    ):
        raise bad_request(f"'{key}' must be a time in HH:MM format")
    if key in {"add_time", "close_time", "won_time", "lost_time"} and value is not None:
        try:
            parse_rfc3339(value) if isinstance(value, str) else parse_rfc3339("x")
        except ValueError as exc:
            raise bad_request(f"'{key}' must be an RFC 3339 timestamp") from exc
    if key == "address" and value is not None and not isinstance(value, Mapping):
        raise bad_request("'address' must be an object")
    if key == "participants" and not isinstance(value, list):
        raise bad_request("'participants' must be an array")
    return value


def _custom_value(definition: FieldDef, value: Any) -> Any:
    """Validate one custom field value by its field type."""
    if value is None:
        return None
    kind = definition.field_type
    where = f"custom field '{definition.key}'"
    option_ids = {option["id"] for option in definition.options}
    if kind in {"varchar", "varchar_auto", "text", "phone"}:
        if not isinstance(value, str):
            raise bad_request(f"{where} must be a string")
    elif kind == "double":
        if not _is_number(value):
            raise bad_request(f"{where} must be a number")
    elif kind == "date":
        if not is_date(value):
            raise bad_request(f"{where} must be a date in YYYY-MM-DD format")
    elif kind == "enum":
        if value not in option_ids:
            raise bad_request(f"{where} must be one of the option ids {sorted(option_ids)}")
    elif kind == "set":
        if not isinstance(value, list) or any(item not in option_ids for item in value):
            raise bad_request(f"{where} must be an array of option ids {sorted(option_ids)}")
    elif kind == "monetary":
        if not (
            isinstance(value, Mapping)
            and _is_number(value.get("value"))
            and isinstance(value.get("currency"), str)
        ):
            raise bad_request(f"{where} must be an object {{value, currency}}")
    elif kind == "address":
        if not (isinstance(value, Mapping) and isinstance(value.get("value"), str)):
            raise bad_request(f"{where} must be an object with a string 'value'")
    elif kind in {"user", "org", "people"} and not _is_int(value):
        raise bad_request(f"{where} must be an integer id")
    return value


def parse_write(
    entity: str,
    body: Any,
    custom_fields: Mapping[str, FieldDef],
    exists: Exists,
    *,
    create: bool,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Validate a create (POST) or update (PATCH) body; return ``(standard, custom)`` values.

    Raises:
        ApiError: 400 naming the first offending key.
    """
    if not isinstance(body, Mapping):
        raise bad_request("request body must be a JSON object")
    unknown = sorted(set(body) - WRITABLE[entity] - {"custom_fields"})
    if unknown:
        raise bad_request(f"unknown or read-only properties: {unknown}")
    required = {"persons": "name", "organizations": "name", "deals": "title"}.get(entity)
    if required and (create or required in body):
        value = body.get(required)
        if not isinstance(value, str) or not value.strip():
            raise bad_request(f"'{required}' is required and must be a non-empty string")
    standard = {
        key: _standard(entity, key, value, exists) for key, value in body.items() if key != "custom_fields"
    }
    custom: dict[str, Any] = {}
    raw_custom = body.get("custom_fields")
    if raw_custom is not None:
        if not isinstance(raw_custom, Mapping):
            raise bad_request("'custom_fields' must be an object keyed by field key")
        for key, value in raw_custom.items():
            definition = custom_fields.get(key)
            if definition is None:
                raise bad_request(f"custom field '{key}' does not exist")
            custom[key] = _custom_value(definition, value)
    return standard, custom

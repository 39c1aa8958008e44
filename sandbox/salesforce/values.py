"""Field values: JSON or CSV input -> stored SQLite value -> JSON or CSV output, with Salesforce errors."""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

from sandbox.salesforce.errors import SfError
from sandbox.salesforce.ids import to_18
from sandbox.salesforce.schema import NUMBER_TYPES, FieldSchema

# Salesforce's own email check is looser than RFC 5322; this catches what it rejects in practice.
_EMAIL_RE = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+$"
)
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME_RE = re.compile(
    r"^(\d{4}-\d{2}-\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:?\d{2})?$"
)
_TRUE = {"true", "1", "yes", "y"}
_FALSE = {"false", "0", "no", "n"}


class FieldValueError(ValueError):
    """A value the field rejects; carries the Salesforce error."""

    def __init__(self, error: SfError) -> None:
        super().__init__(error.message)
        self.error = error


def format_datetime(value: dt.datetime) -> str:
    """Salesforce's wire format: ``2024-01-31T10:00:00.000+0000`` (UTC)."""
    value = value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


def parse_datetime(text: str) -> dt.datetime | None:
    """Parse an ISO 8601 datetime as Salesforce accepts it; naive values are UTC."""
    match = _DATETIME_RE.match(text.strip())
    if not match:
        return None
    day, hour, minute, second, fraction, zone = match.groups()
    try:
        base = dt.datetime.fromisoformat(f"{day}T{hour}:{minute}:{second or '00'}")
    except ValueError:
        return None
    micro = int((fraction or "0").ljust(6, "0")[:6])
    offset = dt.timedelta(0)
    if zone and zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = sign * dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return base.replace(microsecond=micro, tzinfo=dt.timezone(offset))


def parse_date(text: str) -> dt.date | None:
    """Parse ``YYYY-MM-DD``."""
    if not _DATE_RE.match(text.strip()):
        return None
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        return None


def _type_error(field: FieldSchema) -> FieldValueError:
    return FieldValueError(
        SfError("INVALID_TYPE_ON_FIELD_IN_RECORD", f"{field.label}: value not of required type", [field.name])
    )


def coerce(field: FieldSchema, value: Any, *, from_csv: bool) -> Any:
    """Convert an input value (JSON value, or CSV text) to its stored form; None stays None.

    Raises:
        FieldValueError: The value is invalid for the field (type, length, picklist, id, email).
    """
    if value is None:
        return None
    ftype = field.type
    if ftype == "boolean":
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return int(value.strip().lower() in _TRUE)
        if isinstance(value, int) and value in (0, 1):
            return value
        raise _type_error(field)
    if ftype in NUMBER_TYPES:
        if isinstance(value, bool):
            raise _type_error(field)
        if isinstance(value, str):
            try:
                number = float(value.strip()) if value.strip() else None
            except ValueError:
                raise _type_error(field) from None
            if number is None:
                return None
        elif isinstance(value, int | float):
            number = float(value)
        else:
            raise _type_error(field)
        if math.isnan(number) or math.isinf(number):
            raise _type_error(field)
        if ftype == "int":
            if number != int(number):
                raise _type_error(field)
            return int(number)
        return number
    if ftype == "date":
        if isinstance(value, str):
            parsed = parse_date(value)
            if parsed is None and from_csv:
                moment = parse_datetime(value)
                parsed = moment.date() if moment else None
            if parsed is not None:
                return parsed.isoformat()
        raise _type_error(field)
    if ftype == "datetime":
        if isinstance(value, str):
            moment = parse_datetime(value)
            if moment is None and parse_date(value):
                moment = dt.datetime.fromisoformat(value.strip()).replace(tzinfo=dt.UTC)
            if moment is not None:
                return format_datetime(moment)
        raise _type_error(field)
    # Text-like types. Salesforce turns JSON numbers into text for text fields.
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _type_error(field)
    text = value if isinstance(value, str) else (str(int(value)) if value == int(value) else str(value))
    if ftype in {"id", "reference"}:
        normalised = to_18(text.strip())
        if normalised is None:
            raise FieldValueError(
                SfError("MALFORMED_ID", f"{field.label}: id value of incorrect type: {text}", [field.name])
            )
        return normalised
    if field.length and len(text) > field.length:
        raise FieldValueError(
            SfError(
                "STRING_TOO_LONG",
                f"{field.label}: data value too large (max length={field.length})",
                [field.name],
            )
        )
    if ftype == "email" and text and not _EMAIL_RE.match(text):
        raise FieldValueError(
            SfError("INVALID_EMAIL_ADDRESS", f"{field.label}: invalid email address", [field.name])
        )
    if ftype == "picklist" and field.restricted and text not in field.values:
        raise FieldValueError(
            SfError(
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                f"{field.label}: bad value for restricted picklist field: {text}",
                [field.name],
            )
        )
    return text


def to_json(field: FieldSchema, stored: Any) -> Any:
    """The REST representation of a stored value."""
    if stored is None:
        return None
    if field.type == "boolean":
        return bool(stored)
    if field.type == "int":
        return int(stored)
    if field.type in NUMBER_TYPES:
        return float(stored)
    return stored


def to_csv(field: FieldSchema | None, stored: Any) -> str:
    """The Bulk CSV representation of a stored value (null is an empty string)."""
    if stored is None:
        return ""
    if field is not None and field.type == "boolean":
        return "true" if stored else "false"
    if field is not None and field.type in NUMBER_TYPES and field.type != "int":
        number = float(stored)
        return str(int(number)) if number.is_integer() else repr(number)
    return str(stored)

"""Value rules of the RapidPro API: datetimes, contact field values, flow start params."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, time, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

FIELD_TYPES = ("text", "number", "datetime", "state", "district", "ward")
# Older servers named the type ``value_type`` and used ``numeric`` for numbers.
LEGACY_TYPE_NAMES = {"numeric": "number"}
LEGACY_TYPE_OUT = {"number": "numeric"}
#: Encoded size limit of flow start params (temba/api/v2/serializers.py FLOW_START_EXTRA_SIZE).
PARAMS_MAX_CHARS = 10_000
#: Longest string value kept in flow start params (normalize_extra truncates to 640).
PARAM_VALUE_MAX = 640
_PARAM_KEY = re.compile(r"[^a-zA-Z0-9_]")
_TRUE = {True, "1", "true", "True", "TRUE", "t", "T", "yes", "Yes", "y", "Y", "on", "On"}
_FALSE = {False, "0", "false", "False", "FALSE", "f", "F", "no", "No", "n", "N", "off", "Off"}
_DAY_FIRST = re.compile(r"^(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})$")
_ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


def format_datetime(value: datetime | None) -> str | None:
    """``YYYY-MM-DDThh:mm:ss.ssssssZ`` in UTC, as every API datetime is rendered."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_datetime(value: str | None) -> datetime | None:
    """Parse a ``before``/``after`` filter (ISO 8601); None when absent or unreadable."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_bool(value: Any) -> bool | None:
    """DRF ``BooleanField`` input rules; None when the value is not a boolean."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | str) and value in _TRUE:
        return True
    if isinstance(value, int | str) and value in _FALSE:
        return False
    return None


def field_value(value: Any, value_type: str, tz: tzinfo) -> str | None:
    """The stored (and returned) form of one contact field value.

    RapidPro keeps a value it cannot parse for the field's type as null rather than failing
    the request: numbers are normalised (``"1.50"`` -> ``"1.5"``), datetimes are rendered in
    the workspace's time zone with microseconds (``2019-09-10T00:00:00.000000+02:00``, the form
    the seed's maintainers matched in 2019), an empty string clears the value.
    """
    if value is None:
        return None
    text = str(value).strip() if not isinstance(value, bool) else str(value).lower()
    if text == "":
        return None
    if value_type == "number":
        return _number(text)
    if value_type == "datetime":
        parsed = _field_datetime(text, tz)
        return None if parsed is None else parsed.isoformat(timespec="microseconds")
    return text


def _number(text: str) -> str | None:
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    if not number.is_finite():
        return None
    normalized = number.normalize()
    return format(normalized, "f") if normalized == normalized.to_integral() else str(normalized)


def _field_datetime(text: str, tz: tzinfo) -> datetime | None:
    day_first = _DAY_FIRST.match(text)
    if day_first:
        day, month, year = (int(part) for part in day_first.groups())
        return _midnight(year, month, day, tz)
    iso_date = _ISO_DATE.match(text)
    if iso_date:
        year, month, day = (int(part) for part in iso_date.groups())
        return _midnight(year, month, day, tz)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    # A timestamp without an offset is ambiguous; RapidPro stores nothing for it.
    if parsed.tzinfo is None:
        return None
    return parsed.astimezone(tz)


def _midnight(year: int, month: int, day: int, tz: tzinfo) -> datetime | None:
    try:
        return datetime.combine(date(year, month, day), time(0, 0), tzinfo=tz)
    except ValueError:
        return None


def zone(name: str) -> tzinfo:
    """The time zone called ``name`` (IANA)."""
    return ZoneInfo(name)


def params_too_long(params: Any) -> bool:
    """Whether flow start params exceed the encoded size limit."""
    return len(json.dumps(params)) > PARAMS_MAX_CHARS


def normalize_params(value: Any) -> Any:
    """Flow start params as RapidPro stores them (temba/api/v2/serializers.py normalize_extra).

    Keys keep only letters, digits and ``_`` (others become ``_``); lists become objects keyed
    by index; null becomes ``""``; strings are cut at 640 characters; nesting is kept.
    """
    if isinstance(value, dict):
        return {_PARAM_KEY.sub("_", str(key)): normalize_params(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return {str(index): normalize_params(item) for index, item in enumerate(value)}
    if value is None:
        return ""
    if isinstance(value, str):
        return value[:PARAM_VALUE_MAX]
    return value

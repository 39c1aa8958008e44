"""Canonical JSON and row hashes: the same record always hashes the same.

A row hash decides whether a record changed since the last sync, so it must not depend on
key order, the database it came from, the driver's numeric types or the Python version.
The canonical form is JSON built by these rules:

- Mappings: keys must be strings and are sorted; a key whose value is None (or NaN, pandas
  NA/NaT) is dropped, so ``{"a": None}`` hashes like ``{}``. Nested mappings follow the same
  rules; lists and tuples keep their order and keep None items (position matters).
- Strings: Unicode NFC, leading and trailing whitespace stripped, inner whitespace kept.
  ``""`` stays distinct from None: Salesforce and REDCap treat an empty string as a value
  (it blanks a field), while a missing value means "leave it alone". Integrations that want
  ``"" == None`` normalise before staging.
- Booleans stay booleans: ``True`` never equals ``1``.
- Numbers (int, float, Decimal, numpy scalars): numerically equal values hash equal
  (``1 == 1.0 == Decimal("1.00")``). Integral values become JSON integers; other values
  become the nearest IEEE double, written in Python's shortest round-trip form (so Decimals
  are compared at double precision, about 16 significant digits). NaN is treated as None;
  infinities are rejected.
- ``date`` -> ``YYYY-MM-DD``; timezone-aware ``datetime`` -> UTC
  ``YYYY-MM-DDTHH:MM:SS.ffffffZ``; naive datetimes are rejected (their instant is unknown);
  ``time`` -> ``time.isoformat()``.
- Anything else (bytes, sets, arbitrary objects) raises :class:`UnserialisableValue`, a
  ``TypeError`` naming the field path, e.g. ``address.lines[2]``.

The canonical JSON is also what staging stores as the payload, so the hash and the pushed
payload never disagree.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import unicodedata
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

__all__ = ["UnserialisableValue", "canonical", "encode", "normalise", "row_hash"]

_ENCODER = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _make_encode_json() -> Callable[[Any], str]:
    # JSONEncoder.encode() builds a new C encoder on every call; normalised payloads are
    # trees of plain JSON types, so one C encoder without cycle checks can be reused (about
    # a microsecond saved per row). Same output: only the construction is hoisted.
    make = getattr(json.encoder, "c_make_encoder", None)
    try:
        iterencode = make(None, None, json.encoder.encode_basestring, None, ":", ",", True, False, False)
    except TypeError:  # pragma: no cover - no C accelerator, or another signature
        return _ENCODER.encode
    return lambda value: "".join(iterencode(value, 0))


_encode_json = _make_encode_json()
_sha256 = hashlib.sha256


class UnserialisableValue(TypeError):
    """A value cannot be put in canonical form; ``path`` names the field, never its value."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"field {path!r}: {reason}")
        self.path = path
        self.reason = reason


def normalise(payload: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``payload`` as plain JSON-ready data following the module's rules."""
    return _mapping(payload, "")


def canonical(payload: Mapping[str, Any]) -> str:
    """Return the canonical JSON text of ``payload``."""
    return _encode_json(_mapping(payload, ""))


def row_hash(payload: Mapping[str, Any]) -> str:
    """Return the hex SHA-256 of the canonical JSON (UTF-8) of ``payload``."""
    return _sha256(_encode_json(_mapping(payload, "")).encode()).hexdigest()


def encode(payload: Mapping[str, Any]) -> tuple[str, str]:
    """Return ``(canonical JSON, row hash)`` of ``payload`` with a single walk."""
    text = _encode_json(_mapping(payload, ""))
    return text, _sha256(text.encode()).hexdigest()


def _mapping(
    mapping: Mapping[str, Any],
    prefix: str,
    _str: type = str,
    _int: type = int,
    _bool: type = bool,
    _date: type = date,
    _normalize: Callable[[str, str], str] = unicodedata.normalize,
) -> dict[str, Any]:
    # The hot path (a few microseconds a row): plain str/int/bool/None/date values are
    # handled inline, with builtins bound as locals; everything else goes through _other().
    out: dict[str, Any] = {}
    for name, value in mapping.items():
        if type(name) is not _str:
            raise UnserialisableValue(
                f"{prefix}.{name!r}" if prefix else repr(name), "field names must be strings"
            )
        kind = type(value)
        if kind is _str:
            out[name] = value.strip() if value.isascii() else _normalize("NFC", value).strip()
        elif value is None:
            continue
        elif kind is _int or kind is _bool:
            out[name] = value
        elif kind is _date:
            out[name] = value.isoformat()
        else:
            value = _other(value, f"{prefix}.{name}" if prefix else name)
            if value is not None:
                out[name] = value
    return out


def _other(value: Any, path: str) -> Any:
    """Normalise any value other than a plain str, int, bool or None."""
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _float(float(value), path)
    if isinstance(value, str):
        return _text(str(value))
    if isinstance(value, Decimal):
        return _decimal(value, path)
    if isinstance(value, datetime):
        return _datetime(value, path)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return value.isoformat()
    if isinstance(value, Mapping):
        return _mapping(value, path)
    if isinstance(value, list | tuple):
        return [_item(item, f"{path}[{index}]") for index, item in enumerate(value)]
    if _is_numpy_number(value):
        return _other(value.item(), path)
    if _is_pandas_missing(value):
        return None
    raise UnserialisableValue(path, f"values of type {type(value).__name__} are not supported")


def _item(value: Any, path: str) -> Any:
    kind = type(value)
    if kind is str:
        return _text(value)
    if value is None or kind is int or kind is bool:
        return value
    return _other(value, path)


def _text(value: str) -> str:
    if value.isascii():
        return value.strip()
    return unicodedata.normalize("NFC", value).strip()


def _float(value: float, path: str) -> int | float | None:
    if value.is_integer():
        return int(value)
    if math.isnan(value):
        return None
    if math.isinf(value):
        raise UnserialisableValue(path, "infinite numbers are not supported")
    return value


def _decimal(value: Decimal, path: str) -> int | float | None:
    if value.is_nan():
        return None
    if value.is_infinite():
        raise UnserialisableValue(path, "infinite numbers are not supported")
    if value == value.to_integral_value():
        return int(value)
    return float(value)


def _datetime(value: datetime, path: str) -> str | None:
    if value != value:  # pandas NaT is a datetime that is not equal to itself
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise UnserialisableValue(path, "naive datetimes are not supported; attach a timezone")
    if type(value) is not datetime and hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()  # pandas Timestamp: formats like a datetime from here on
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _is_numpy_number(value: Any) -> bool:
    dtype = getattr(value, "dtype", None)
    return (
        type(value).__module__ == "numpy"
        and dtype is not None
        and dtype.kind in "biuf"
        and getattr(value, "ndim", None) == 0
    )


def _is_pandas_missing(value: Any) -> bool:
    pandas = sys.modules.get("pandas")
    return pandas is not None and value is pandas.NA

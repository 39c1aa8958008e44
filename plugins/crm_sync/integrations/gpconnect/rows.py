"""Shape one sheet row into what is staged: the E.164 phone and the flow params by field key."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from crm_sync.exceptions import RecordRejected
from crm_sync.integrations.gpconnect.files import row_key
from crm_sync.integrations.gpconnect.transforms import (
    PHONE,
    POSITIVE,
    clean,
    is_date_column,
    is_positive,
    to_date,
    to_e164,
)
from crm_sync.integrations.gpconnect.workbook import FileRejected, RawRow

__all__ = ["HAS_WHATSAPP", "Columns", "ParseStats", "columns_for", "shape_rows"]

#: The contact field the WhatsApp check fills (it must exist in the workspace, as in the seed).
HAS_WHATSAPP = "has_whatsapp"
REQUIRED = (PHONE, POSITIVE)


@dataclass(frozen=True)
class Columns:
    """How each header maps to a RapidPro contact field, and which ones hold dates."""

    fields: Mapping[str, str]
    """Header -> field key, for every header but ``telephone_no``."""
    dates: frozenset[str]
    """Headers read as dates."""


def _key_of(header: str) -> str:
    # RapidPro derives a field key from its name the same way (lower case, [^a-z0-9] -> _).
    return "".join(ch if ch.isalnum() else "_" for ch in header.strip().lower()).strip("_")


def columns_for(headers: list[str], field_types: Mapping[str, str]) -> Columns:
    """Match headers to the workspace's contact fields.

    A header matches a field key as written or as RapidPro would derive a key from it
    (``First name`` -> ``first_name``).

    Raises:
        FileRejected: ``MISSING_HEADER`` (``telephone_no`` or ``patients_tested_positive``
            absent) or ``UNKNOWN_HEADERS`` (headers that are no contact field), listing them.
    """
    by_key = {_key_of(h): h for h in headers}
    missing = [name for name in REQUIRED if name not in by_key]
    if missing:
        raise FileRejected("MISSING_HEADER", f"required header(s) missing: {', '.join(missing)}")
    fields: dict[str, str] = {}
    unknown = []
    for header in headers:
        key = header if header in field_types else _key_of(header)
        if key == PHONE:
            continue
        if key not in field_types:
            unknown.append(header)
        else:
            fields[header] = key
    if unknown:
        raise FileRejected(
            "UNKNOWN_HEADERS",
            f"header(s) {', '.join(map(repr, unknown))} are not contact fields of the RapidPro workspace; "
            "create the fields or remove the columns",
        )
    dates = frozenset(h for h, key in fields.items() if is_date_column(h, field_types.get(key)))
    return Columns(fields=fields, dates=dates)


@dataclass
class ParseStats:
    """Rows read and kept in one file (filled while the rows stream)."""

    rows_total: int = 0
    rows_kept: int = 0
    rejected: int = 0


def shape_rows(
    rows: Iterator[RawRow],
    columns: Columns,
    *,
    import_id: str,
    region: str,
    epoch: datetime,
    tz: tzinfo | None,
    stats: ParseStats,
) -> Iterator[dict[str, Any] | RecordRejected]:
    """Staged records (``row_key``, ``row``, ``phone``, ``params``) of the kept rows.

    A row that cannot be imported is yielded as a :class:`RecordRejected` naming the row and
    the column: ``MISSING_PHONE``, ``INVALID_PHONE``, ``DUPLICATE_PHONE`` (the first row with a
    number wins), ``INVALID_DATE``, ``FORMULA_NOT_CALCULATED``.
    """
    seen: dict[str, int] = {}
    for raw in rows:
        stats.rows_total += 1
        values = {_key_of(h) if _key_of(h) in REQUIRED else h: v for h, v in raw.values.items()}
        key = row_key(import_id, raw.number)
        uncalculated = [_key_of(h) for h in raw.uncalculated]
        if POSITIVE not in uncalculated and not is_positive(values.get(POSITIVE)):
            continue
        stats.rows_kept += 1
        if uncalculated:
            # A row whose flag is an uncalculated formula may be positive: rejected, not dropped.
            stats.rejected += 1
            yield _formula(key, raw.number, POSITIVE if POSITIVE in uncalculated else uncalculated[0])
            continue
        try:
            phone = to_e164(values.get(PHONE), region, key=key, row=raw.number)
            _first_with(phone, seen, key=key, row=raw.number)
            params = _params(raw, columns, key=key, epoch=epoch, tz=tz)
        except RecordRejected as rejected:
            stats.rejected += 1
            yield rejected
            continue
        yield {"row_key": key, "row": raw.number, "phone": phone, "params": params}


def _first_with(phone: str, seen: dict[str, int], *, key: str, row: int) -> None:
    """Remember the first row of each number; a later row with it is rejected (first wins)."""
    if phone in seen:
        raise RecordRejected(
            key, "DUPLICATE_PHONE", f"row {row}: same {PHONE} as row {seen[phone]}", field=PHONE
        )
    seen[phone] = row


def _formula(key: str, row: int, column: str) -> RecordRejected:
    return RecordRejected(
        key,
        "FORMULA_NOT_CALCULATED",
        f"row {row}: column {column!r} holds a formula without a calculated value; "
        "open and save the file in Excel so the values are stored",
        field=column,
    )


def _params(raw: RawRow, columns: Columns, *, key: str, epoch: datetime, tz: tzinfo | None) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for header, field_key in columns.fields.items():
        value = raw.values.get(header)
        if header in columns.dates:
            try:
                params[field_key] = to_date(value, epoch=epoch, tz=tz)
            except ValueError as exc:
                raise RecordRejected(
                    key, "INVALID_DATE", f"row {raw.number}: column {header!r} holds {exc}", field=field_key
                ) from None
        else:
            value = clean(value)
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            params[field_key] = value
    return params

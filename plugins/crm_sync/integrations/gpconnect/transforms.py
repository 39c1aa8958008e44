"""Cell values of a GP Connect report as RapidPro takes them, and the row-vs-contact comparison.

Rules (seed 002 plus its maintainers' 2019 fixes): a row is kept when
``patients_tested_positive`` is 1 (number, text or TRUE); ``telephone_no`` becomes E.164; ``''``
becomes None; date columns (RapidPro ``datetime`` fields, or a header containing ``date``)
become ISO 8601 dates; other values keep their type. No function here puts a cell's value in
an error message: phone numbers and patient details are personal data.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, time, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

import phonenumbers
from openpyxl.utils.datetime import CALENDAR_WINDOWS_1900, from_excel

from crm_sync.exceptions import RecordRejected

__all__ = [
    "PHONE",
    "POSITIVE",
    "clean",
    "differs",
    "is_date_column",
    "is_positive",
    "to_date",
    "to_e164",
]

PHONE = "telephone_no"
POSITIVE = "patients_tested_positive"
# Excel's day serials: 1 = 1900-01-01, 2958465 = 9999-12-31.
_SERIAL_MIN, _SERIAL_MAX = 1, 2_958_465
_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y", "%Y%m%d")


def clean(value: Any) -> Any:
    """Strip text; ``''`` (or only spaces) becomes None; other values pass."""
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


def is_positive(value: Any) -> bool:
    """Whether ``patients_tested_positive`` says 1: ``1``, ``1.0``, ``"1"``, ``" 1 "`` or TRUE."""
    value = clean(value)
    if value is None:
        return False
    if isinstance(value, bool):
        return value  # the seed compared with == 1, which TRUE passes
    try:
        return Decimal(str(value)) == 1
    except InvalidOperation:
        return False


def to_e164(value: Any, region: str, *, key: str, row: int) -> str:
    """The phone number in E.164 (``+27821234567``).

    Numbers typed into a cell lose their leading ``0`` or ``+`` (Excel stores 27821234567 or
    821234567.0); both are read as digits and parsed with ``region`` as the default country.

    Raises:
        RecordRejected: ``MISSING_PHONE`` or ``INVALID_PHONE`` (the value is not repeated).
    """
    value = clean(value)
    if value is None:
        raise RecordRejected(key, "MISSING_PHONE", f"row {row}: no {PHONE}", field=PHONE)
    if isinstance(value, bool):
        raise RecordRejected(key, "INVALID_PHONE", f"row {row}: {PHONE} is TRUE/FALSE", field=PHONE)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value)
    # A stored number lost its "+"; try it as international first, then as national.
    candidates = [f"+{text}", text] if isinstance(value, int) else [text]
    for candidate in candidates:
        try:
            parsed = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(parsed):
            return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    digits = sum(ch.isdigit() for ch in text)
    raise RecordRejected(
        key,
        "INVALID_PHONE",
        f"row {row}: {PHONE} is not a valid phone number for region {region} ({digits} digits)",
        field=PHONE,
    )


def is_date_column(header: str, field_type: str | None) -> bool:
    """Whether a column holds dates: a RapidPro ``datetime`` field or a header naming a date."""
    return field_type == "datetime" or "date" in header.lower()


def to_date(value: Any, *, epoch: datetime = CALENDAR_WINDOWS_1900, tz: tzinfo | None = None) -> str | None:
    """A date cell as ISO 8601: ``2019-09-10``, or a timestamp with ``tz``'s offset.

    Accepts datetimes (openpyxl's reading of date-formatted cells), Excel day serials stored as
    plain numbers, and text in the usual forms (``2019-09-10``, ``2019/09/10``, ``10/09/2019``,
    ISO timestamps).

    Raises:
        ValueError: the value is not a date (the caller rejects the row naming the column).
    """
    value = clean(value)
    if value is None:
        return None
    if isinstance(value, datetime):
        return _iso(value, tz)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        raise ValueError("TRUE/FALSE is not a date")  # noqa: TRY004 - the caller rejects non-dates
    if isinstance(value, int | float):
        if not _SERIAL_MIN <= value <= _SERIAL_MAX:
            raise ValueError("a number outside Excel's date serials")
        converted = from_excel(value, epoch=epoch)
        return _iso(converted, tz) if isinstance(converted, datetime) else str(converted)
    text = str(value)
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).date().isoformat()  # noqa: DTZ007 - a date, no time
        except ValueError:
            continue
    try:
        return _iso(datetime.fromisoformat(text.replace("Z", "+00:00")), tz)
    except ValueError:
        pass
    try:
        serial = float(text)
    except ValueError:
        raise ValueError("text that is not a date") from None
    return to_date(serial, epoch=epoch, tz=tz)


def _iso(value: datetime, tz: tzinfo | None) -> str:
    if value.time() == time(0) and value.tzinfo is None:
        return value.date().isoformat()
    if value.tzinfo is None and tz is not None:
        # RapidPro stores nothing for a timestamp without an offset: give it the workspace's.
        value = value.replace(tzinfo=tz)
    return value.isoformat()


def differs(params: Mapping[str, Any], fields: Mapping[str, Any], types: Mapping[str, str]) -> list[str]:
    """The params whose value differs from the contact's field (compared as RapidPro stores it).

    The seed's test was ``row.items() <= contact.fields.items()``. RapidPro normalises what it
    stores (``"40.0"`` -> ``"40"``, a date -> ``2019-09-10T00:00:00.000000+02:00``, TRUE ->
    ``"true"``), so values are compared by field type: numbers as decimals, datetimes by
    instant (a date by the calendar day in the stored value's own offset), text exactly.
    """
    return [key for key, value in params.items() if not _same(value, fields.get(key), types.get(key, "text"))]


def _same(ours: Any, theirs: Any, field_type: str) -> bool:
    ours, theirs = _text(ours), _text(theirs)
    if ours is None or theirs is None:
        return ours is None and theirs is None
    if field_type == "number":
        try:
            return Decimal(ours) == Decimal(theirs)
        except InvalidOperation:
            return ours == theirs
    if field_type == "datetime":
        try:
            stored = datetime.fromisoformat(theirs.replace("Z", "+00:00"))
        except ValueError:
            return False
        if len(ours) == 10:  # a date: RapidPro keeps midnight in the workspace's zone
            return stored.date().isoformat() == ours
        try:
            sent = datetime.fromisoformat(ours.replace("Z", "+00:00"))
        except ValueError:
            return False
        if sent.tzinfo is None or stored.tzinfo is None:
            return sent.replace(tzinfo=None) == stored.replace(tzinfo=None)
        return sent == stored
    return ours == theirs


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None

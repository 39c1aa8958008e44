"""Price-point validation and money formatting, as Maxio Advanced Billing applies them.

Messages are the emulator's wording (api-contracts.md section 6.2 gives the shapes, not the
texts); the rules follow Maxio's price-point docs: brackets start at 1, are contiguous, and
volume/tiered schemes end with an open bracket.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

PRICING_SCHEMES = ("per_unit", "volume", "tiered", "stairstep")
#: Schemes whose last bracket must be open-ended (``ending_quantity: null``).
OPEN_ENDED_SCHEMES = frozenset({"volume", "tiered"})
INTERVAL_UNITS = ("day", "month")
HANDLE_RE = re.compile(r"^[a-z0-9][a-z0-9_:-]*$")
HANDLE_MESSAGE = (
    "Handle must start with a letter or number and may only contain lowercase letters, numbers, "
    "or the characters ':', '-', or '_'"
)


@dataclass(frozen=True)
class Bracket:
    """One validated price bracket."""

    starting_quantity: int
    ending_quantity: int | None
    unit_price: Decimal


def format_decimal(value: Decimal) -> str:
    """Render an amount the way Maxio does (``"5.0"``, ``"0.25"``)."""
    normalized = value.normalize()
    if normalized == normalized.to_integral_value():
        return f"{int(normalized)}.0"
    return format(normalized, "f")


def format_money(value: Decimal) -> str:
    """``formatted_unit_price``: ``"$5.00"``."""
    return f"${value.quantize(Decimal('0.01')):,}"


def _quantity(raw: Any, *, allow_none: bool) -> int | None:
    """An integer quantity from a JSON number or numeric string; raises ValueError."""
    if raw is None or raw == "":
        if allow_none:
            return None
        raise ValueError("blank")
    try:
        number = Decimal("NaN" if isinstance(raw, bool) else str(raw).strip())
    except InvalidOperation as exc:
        raise ValueError("not a number") from exc
    if not number.is_finite() or number != number.to_integral_value():
        raise ValueError("not a whole number")
    return int(number)


def _price(raw: Any) -> Decimal:
    if raw is None or raw == "" or isinstance(raw, bool):
        raise ValueError("blank")
    try:
        number = Decimal(str(raw).strip())
    except InvalidOperation as exc:
        raise ValueError("not a number") from exc
    if not number.is_finite():
        raise ValueError("not a number")
    return number


def parse_brackets(raw_prices: Any, scheme: str | None) -> tuple[list[Bracket], list[str]]:
    """Validate ``prices``; return the brackets sorted by starting quantity and any errors."""
    if not isinstance(raw_prices, list) or not raw_prices:
        return [], ["Prices cannot be blank"]
    errors: list[str] = []
    brackets: list[Bracket] = []
    for number, raw in enumerate(raw_prices, start=1):
        if not isinstance(raw, dict):
            errors.append(f"Price {number}: must be an object")
            continue
        try:
            start = _quantity(raw.get("starting_quantity", 1), allow_none=False)
        except ValueError:
            errors.append(f"Price {number}: starting quantity must be a whole number")
            continue
        try:
            end = _quantity(raw.get("ending_quantity"), allow_none=True)
        except ValueError:
            errors.append(f"Price {number}: ending quantity must be a whole number")
            continue
        try:
            unit_price = _price(raw.get("unit_price"))
        except ValueError:
            errors.append(f"Price {number}: unit price must be a number")
            continue
        assert start is not None
        if start < 1:
            errors.append(f"Price {number}: starting quantity must be greater than or equal to 1")
        if end is not None and end < start:
            errors.append(
                f"Price {number}: ending quantity must be greater than or equal to starting quantity"
            )
        if unit_price < 0:
            errors.append(f"Price {number}: unit price must be greater than or equal to 0")
        brackets.append(Bracket(start, end, unit_price))
    if errors:
        return [], errors
    brackets.sort(key=lambda b: b.starting_quantity)
    if scheme == "per_unit" and len(brackets) != 1:
        errors.append("Prices: a per_unit price point takes exactly one price")
    for previous, current in itertools.pairwise(brackets):
        if previous.ending_quantity is None:
            errors.append(
                f"Prices: the bracket starting at {previous.starting_quantity} is open-ended "
                "but is not the last one"
            )
        elif current.starting_quantity != previous.ending_quantity + 1:
            errors.append(
                f"Prices: the bracket starting at {current.starting_quantity} must start at "
                f"{previous.ending_quantity + 1} (brackets must be contiguous)"
            )
    if scheme in OPEN_ENDED_SCHEMES and brackets and brackets[-1].ending_quantity is not None:
        errors.append(f"Prices: the last bracket of a {scheme} price point must have no ending quantity")
    return (brackets, errors) if not errors else ([], errors)


def validate_price_point(raw: Any) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Validate one ``price_point`` object; return its clean fields and a field->messages map."""
    errors: dict[str, list[str]] = {}
    if not isinstance(raw, dict):
        return {}, {"price_point": ["Price point cannot be blank"]}

    def add(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        add("name", "Name cannot be blank")
    handle = raw.get("handle")
    if handle in (None, ""):
        handle = None
    elif not isinstance(handle, str) or not HANDLE_RE.match(handle):
        add("handle", HANDLE_MESSAGE)
    scheme = raw.get("pricing_scheme")
    if scheme not in PRICING_SCHEMES:
        add("pricing_scheme", f"Pricing scheme must be one of: {', '.join(PRICING_SCHEMES)}")
        scheme = None
    brackets, price_errors = parse_brackets(raw.get("prices"), scheme)
    for message in price_errors:
        add("prices", message)
    flags = {}
    for flag in ("use_site_exchange_rate", "tax_included"):
        value = raw.get(flag, flag == "use_site_exchange_rate")
        if not isinstance(value, bool):
            add(flag, f"{flag.replace('_', ' ').capitalize()} must be true or false")
        flags[flag] = value
    interval, unit = raw.get("interval"), raw.get("interval_unit")
    if interval is not None and (not isinstance(interval, int) or isinstance(interval, bool) or interval < 1):
        add("interval", "Interval must be a positive whole number")
    if unit is not None and unit not in INTERVAL_UNITS:
        add("interval_unit", "Interval unit must be one of: day, month")
    clean = {
        "name": name.strip() if isinstance(name, str) else name,
        "handle": handle,
        "pricing_scheme": scheme,
        "brackets": brackets,
        "interval": interval,
        "interval_unit": unit,
        **flags,
    }
    return clean, errors

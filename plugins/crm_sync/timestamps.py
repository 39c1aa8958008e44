"""Instants as the APIs send them, read one way everywhere."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

__all__ = ["parse_instant"]


def parse_instant(value: Any) -> datetime | None:
    """An ISO 8601 instant (``Z``, ``+00:00`` or ``+0000``; no offset = UTC) as an aware datetime.

    None when the value is blank or not an instant: callers decide whether that is an error.
    """
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = "" if value is None else str(value).strip()
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)

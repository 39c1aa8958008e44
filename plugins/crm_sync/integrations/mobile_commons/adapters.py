"""Adapters of the Mobile Commons mapping: Salesforce's multi-line street as two profile lines."""

from __future__ import annotations

from typing import Any

from crm_sync.sync.adapters import adapter, is_blank


def _lines(value: Any) -> list[str]:
    if is_blank(value):
        return []
    return [line.strip() for line in str(value).splitlines() if line.strip()]


@adapter("street_line_1")
def street_line_1(value: Any) -> Any:
    """The first line of a multi-line street (Salesforce ``MailingStreet``)."""
    lines = _lines(value)
    return lines[0] if lines else None


@adapter("street_line_2")
def street_line_2(value: Any) -> Any:
    """The remaining lines of a multi-line street, joined by ``, ``."""
    lines = _lines(value)
    return ", ".join(lines[1:]) or None

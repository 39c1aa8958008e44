"""Pagination: v2 opaque ``cursor`` + ``limit`` (``next_cursor``), v1 ``start`` + ``limit``."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sandbox.pipedrive.errors import bad_request

T = TypeVar("T")
DEFAULT_LIMIT = 100
MAX_LIMIT = 500


def parse_limit(raw: str | None) -> int:
    """``limit`` (default 100, at most 500; api-contracts.md 3.2).

    Raises:
        ApiError: 400 when not an integer in 1..500.
    """
    if raw is None:
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError as exc:
        raise bad_request("'limit' must be an integer") from exc
    if not 1 <= limit <= MAX_LIMIT:
        raise bad_request(f"'limit' must be between 1 and {MAX_LIMIT}")
    return limit


def encode_cursor(last: Sequence[Any], fingerprint: str) -> str:
    """An opaque cursor naming the sort key of the last item served, for one particular query."""
    raw = json.dumps({"k": list(last), "q": fingerprint}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, fingerprint: str) -> tuple[Any, ...]:
    """The sort key in ``cursor``.

    Raises:
        ApiError: 400 for a cursor that is malformed or belongs to another query.
    """
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        body = json.loads(base64.urlsafe_b64decode(padded.encode()))
        last, query = tuple(body["k"]), str(body["q"])
    except (ValueError, TypeError, KeyError, binascii.Error) as exc:
        raise bad_request("Invalid cursor") from exc
    if query != fingerprint:
        raise bad_request("Invalid cursor")
    return last


def cursor_page(
    items: Sequence[T],
    *,
    key: Callable[[T], tuple[Any, ...]],
    cursor: str | None,
    limit: int,
    fingerprint: str,
    descending: bool = False,
) -> tuple[list[T], str | None]:
    """One v2 page of ``items`` (already filtered and sorted by ``key``) and the next cursor.

    The cursor holds the last served item's key (keyset paging), so a record that changes
    while a client pages moves without shifting the others: nothing is skipped or repeated
    among the records that did not change.
    """
    start = 0
    if cursor:
        last = decode_cursor(cursor, fingerprint)
        after = (lambda k: k < last) if descending else (lambda k: k > last)
        start = next((i for i, item in enumerate(items) if after(key(item))), len(items))
    page = list(items[start : start + limit])
    more = start + len(page) < len(items)
    return page, (encode_cursor(key(page[-1]), fingerprint) if more and page else None)


def v2_body(data: Any, next_cursor: str | None) -> dict[str, Any]:
    """``{success: true, data, additional_data: {next_cursor}}``."""
    return {"success": True, "data": data, "additional_data": {"next_cursor": next_cursor}}


def v1_page(items: Sequence[T], *, start: str | None, limit: str | None) -> tuple[list[T], dict[str, Any]]:
    """One v1 page and its ``additional_data.pagination``."""
    try:
        first = int(start or 0)
    except ValueError as exc:
        raise bad_request("'start' must be an integer") from exc
    size = parse_limit(limit)
    page = list(items[first : first + size])
    more = first + len(page) < len(items)
    pagination = {
        "start": first,
        "limit": size,
        "more_items_in_collection": more,
    }
    if more:
        pagination["next_start"] = first + len(page)
    return page, {"pagination": pagination}

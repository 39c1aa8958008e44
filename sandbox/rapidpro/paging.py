"""RapidPro's cursor pagination: ``{next, previous, results}`` with opaque ``cursor=`` URLs."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import urlencode

from sandbox.rapidpro.errors import detail

T = TypeVar("T")
Key = tuple[str, int]


def _encode(direction: str, key: Key) -> str:
    raw = json.dumps([direction, list(key)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> tuple[str, Key]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        direction, key = json.loads(base64.urlsafe_b64decode(padded.encode()))
        boundary = (str(key[0]), int(key[1]))
    except (ValueError, TypeError, IndexError, binascii.Error) as exc:
        raise detail(404, "Invalid cursor") from exc
    if direction not in {"n", "p"}:
        raise detail(404, "Invalid cursor")
    return direction, boundary


def paginate(
    items: Sequence[T],
    key: Callable[[T], Key],
    *,
    cursor: str | None,
    page_size: int,
    url: str,
    params: Mapping[str, str],
    descending: bool = True,
) -> tuple[list[T], str | None, str | None]:
    """Cut one page out of ``items``, which are sorted by ``key`` in display order.

    Display order is newest (largest key) first unless ``descending`` is False. The cursor
    names the key of the item at the page boundary, so a boundary is stable while items are
    added, as with DRF's CursorPagination. Returns ``(page, next, previous)``.
    """
    keys = [key(item) for item in items]

    def after(k: Key, boundary: Key) -> bool:
        return k < boundary if descending else k > boundary

    if cursor:
        direction, boundary = _decode(cursor)
        if direction == "n":
            start = next((i for i, k in enumerate(keys) if after(k, boundary)), len(keys))
            end = min(start + page_size, len(keys))
        else:
            end = next((i for i, k in enumerate(keys) if not after(boundary, k)), len(keys))
            start = max(end - page_size, 0)
    else:
        start, end = 0, min(page_size, len(keys))
    page = list(items[start:end])
    base = {name: value for name, value in params.items() if name != "cursor"}

    def link(direction: str, boundary: Key) -> str:
        return f"{url}?{urlencode({**base, 'cursor': _encode(direction, boundary)})}"

    next_url = link("n", keys[end - 1]) if end < len(keys) and end > start else None
    previous_url = link("p", keys[start]) if start > 0 and start < len(keys) else None
    return page, next_url, previous_url


def page_body(results: list[Any], next_url: str | None, previous_url: str | None) -> dict[str, Any]:
    """The list envelope."""
    return {"next": next_url, "previous": previous_url, "results": results}

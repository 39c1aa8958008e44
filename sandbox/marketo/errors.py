"""Marketo's envelopes: every answer is HTTP 200 ``{requestId, success, result | errors}``."""

from __future__ import annotations

import itertools
import random
from typing import Any

_SEQUENCE = itertools.count(0x14272D07D78)


class MarketoError(Exception):
    """A response-level error: HTTP 200 with ``success: false`` and one ``errors`` entry.

    6xx codes mean the request was not executed and is not counted against quota or rate
    (api-contracts.md section 2.3); 7xx and 1xxx here are request-level refusals.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class RecordError(Exception):
    """A record-level refusal: the record comes back ``skipped`` with this reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def request_id() -> str:
    """A request id shaped like Marketo's (``e42b#14272d07d78``)."""
    return f"{random.randrange(0x1000, 0xFFFF):x}#{next(_SEQUENCE):x}"  # noqa: S311 - not a secret


def success(result: list[Any], **extra: Any) -> dict[str, Any]:
    """A successful envelope."""
    return {"requestId": request_id(), "result": result, "success": True, **extra}


def failure(code: str, message: str) -> dict[str, Any]:
    """A response-level error envelope (still HTTP 200)."""
    return {"requestId": request_id(), "success": False, "errors": [{"code": code, "message": message}]}


def reason(code: str, message: str) -> dict[str, str]:
    """One entry of a skipped record's ``reasons`` (or a custom activity's ``errors``)."""
    return {"code": code, "message": message}


# Messages as Marketo words them (reference: marketo-developer error-codes.md).
TOKEN_INVALID = ("601", "Access token invalid")
TOKEN_EXPIRED = ("602", "Access token expired")
RATE_LIMIT = ("606", "Max rate limit '{limit}' exceeded with in '{window}' secs")
DAILY_QUOTA = ("607", "Daily quota reached")
INVALID_JSON = ("609", "Invalid JSON")
NOT_FOUND = ("610", "Requested resource not found")
CONTENT_TYPE = ("612", "Invalid Content Type")
CONCURRENCY = ("615", "Concurrent access limit reached")

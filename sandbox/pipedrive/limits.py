"""Pipedrive's rate limits: a 2-second burst window per token and a daily token budget per company.

Burst headers on every response (pipedrive.readme.io "Rate limiting", api-contracts.md 3.5):
``x-ratelimit-limit``, ``x-ratelimit-remaining``, ``x-ratelimit-reset`` (seconds to the window
reset) and, on POST/PUT/PATCH answers, ``x-daily-requests-left`` (write requests left today,
UTC). Over the burst limit: 429 with ``Retry-After``. The daily token budget (token-based rate
limiting) charges each call a cost by endpoint kind; once spent, every call answers 429 until
midnight UTC. Costs are third-party figures (I).
"""

from __future__ import annotations

import math
import time
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.pipedrive.errors import ApiError, error

BURST_WINDOW_S = 2.0
#: Token cost per call kind (third-party figures, api-contracts.md 3.5, I).
COSTS = {"get": 2, "list": 20, "search": 40, "write": 10, "delete": 6, "fields": 20}
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH"})


def seconds_to_midnight(now: datetime) -> int:
    """Whole seconds until the next UTC midnight (when daily budgets reset)."""
    tomorrow = (now.astimezone(UTC) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(math.ceil((tomorrow - now).total_seconds()), 1)


class Limits:
    """Burst window, daily token budget, daily write counter and injected 429s (callers lock)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.window: deque[float] = deque()
        self.tokens_used = 0
        self.writes_today = 0
        self.day = datetime.now(UTC).date()
        self.forced_429 = 0
        self.forced_retry_after = 2

    def reset(self) -> None:
        """Forget all usage."""
        self.window.clear()
        self.tokens_used = 0
        self.writes_today = 0
        self.forced_429 = 0

    def _roll_day(self) -> None:
        today = datetime.now(UTC).date()
        if today != self.day:
            self.day, self.tokens_used, self.writes_today = today, 0, 0

    @property
    def tokens_left(self) -> int:
        """Tokens left in today's budget."""
        return max(int(self.config["daily_token_budget"]) - self.tokens_used, 0)

    def _burst_headers(self, now: float) -> dict[str, str]:
        limit = self.config["burst_limit"] or self.config["nominal_burst_limit"]
        reset = math.ceil(self.window[0] + BURST_WINDOW_S - now) if self.window else int(BURST_WINDOW_S)
        return {
            "x-ratelimit-limit": str(limit),
            "x-ratelimit-remaining": str(max(limit - len(self.window), 0)),
            "x-ratelimit-reset": str(max(reset, 1)),
        }

    def admit(self, method: str, kind: str) -> dict[str, str]:
        """Charge one call of ``kind``; return the rate-limit headers for its response.

        Raises:
            ApiError: 429 when a 429 was injected, the burst window is full or the daily token
                budget is spent.
        """
        self._roll_day()
        now = time.monotonic()
        while self.window and self.window[0] <= now - BURST_WINDOW_S:
            self.window.popleft()
        if self.forced_429 > 0:
            self.forced_429 -= 1
            headers = self._burst_headers(now) | {
                "x-ratelimit-remaining": "0",
                "x-ratelimit-reset": str(self.forced_retry_after),
                "Retry-After": str(self.forced_retry_after),
            }
            raise over_limit(headers)
        if self.tokens_used + COSTS[kind] > int(self.config["daily_token_budget"]):
            raise self.budget_exhausted()
        limit = self.config["burst_limit"]
        if limit is not None and len(self.window) >= limit:
            headers = self._burst_headers(now) | {"x-ratelimit-remaining": "0"}
            headers["Retry-After"] = headers["x-ratelimit-reset"]
            raise over_limit(headers)
        self.window.append(now)
        self.tokens_used += COSTS[kind]
        headers = self._burst_headers(now)
        if method in WRITE_METHODS:
            self.writes_today += 1
            left = max(int(self.config["daily_write_limit"]) - self.writes_today, 0)
            headers["x-daily-requests-left"] = str(left)
        return headers

    def budget_exhausted(self) -> ApiError:
        """429 once the daily token budget is spent; it resets at midnight UTC."""
        wait = seconds_to_midnight(datetime.now(UTC))
        headers = self._burst_headers(time.monotonic()) | {
            "x-ratelimit-remaining": "0",
            "x-ratelimit-reset": str(wait),
            "Retry-After": str(wait),
        }
        return error(429, "Daily token budget exceeded", headers, errorCode=429)


def over_limit(headers: dict[str, str]) -> ApiError:
    """The burst 429 (pipedrive.readme.io: HTTP 429 "Too Many Requests" with a JSON body)."""
    return error(429, "Request over limit", headers, errorCode=429)

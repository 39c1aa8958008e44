"""Access tokens, the 100-calls-per-20-s rate, 10 concurrent calls, the daily quota, injected errors."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sandbox.marketo import errors
from sandbox.marketo.errors import MarketoError

#: The daily quota resets at midnight US Central (api-contracts.md section 2.3).
QUOTA_ZONE = ZoneInfo("America/Chicago")
_BEARER = re.compile(r"^\s*Bearer\s+(\S+)\s*$", re.IGNORECASE)


@dataclass
class Token:
    """An issued access token (``uuid:region``) and its expiry (monotonic seconds)."""

    value: str
    client_id: str
    expires_at: float


@dataclass
class Injection:
    """Answer the next ``times`` API calls whose path matches with error ``code``."""

    code: str
    message: str
    times: int
    path: re.Pattern[str]


class Limits:
    """Everything that can refuse a call before it runs; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.tokens: dict[str, Token] = {}
        self.window: deque[float] = deque()
        self.usage: dict[date, int] = {}
        self.in_flight = 0
        self.injections: list[Injection] = []

    def reset(self) -> None:
        """Forget tokens, counters and injections."""
        with self._lock:
            self.tokens.clear()
            self.window.clear()
            self.usage.clear()
            self.in_flight = 0
            self.injections.clear()

    # ---- identity --------------------------------------------------------------------------------

    def issue(self, client_id: str, lifetime_s: float) -> tuple[str, int]:
        """The client's live token and its remaining seconds; a new one when none is live.

        Asking again before expiry returns the same token with its remaining life (C:MKD).
        """
        now = time.monotonic()
        with self._lock:
            for token in self.tokens.values():
                if token.client_id == client_id and token.expires_at > now + 1:
                    return token.value, int(token.expires_at - now)
            value = f"{uuid.uuid4()}:ab"
            self.tokens[value] = Token(value, client_id, now + lifetime_s)
            return value, int(lifetime_s)

    def expire_all(self) -> int:
        """Expire every issued token now (the next call with one gets 602)."""
        now = time.monotonic()
        with self._lock:
            for token in self.tokens.values():
                token.expires_at = min(token.expires_at, now - 1)
            return len(self.tokens)

    def authenticate(self, header: str | None, query_token: str | None) -> None:
        """Check the ``Authorization: Bearer`` header.

        Raises:
            MarketoError: 601 when missing, unknown or sent as the retired ``access_token``
                query parameter (retired 2026-08-31, api-contracts.md section 2.1); 602 when expired.
        """
        if query_token is not None:
            raise MarketoError(
                "601",
                "Access token invalid: the access_token query parameter is "
                "no longer supported; send it in the Authorization: Bearer header",
            )
        match = _BEARER.match(header or "")
        token = self.tokens.get(match.group(1)) if match else None
        if token is None:
            raise MarketoError(*errors.TOKEN_INVALID)
        if token.expires_at <= time.monotonic():
            raise MarketoError(*errors.TOKEN_EXPIRED)

    # ---- admission -----------------------------------------------------------------------------

    def inject(self, code: str, times: int, path: str | None, message: str | None) -> list[dict[str, Any]]:
        """Queue an injected error for the next ``times`` matching calls."""
        defaults = {
            "601": errors.TOKEN_INVALID[1],
            "602": errors.TOKEN_EXPIRED[1],
            "606": errors.RATE_LIMIT[1].format(limit=100, window=20),
            "607": errors.DAILY_QUOTA[1],
            "615": errors.CONCURRENCY[1],
        }
        text = message or defaults.get(code, "Injected error")
        with self._lock:
            self.injections.append(Injection(code, text, times, re.compile(path or ".*")))
            return self.describe_injections()

    def describe_injections(self) -> list[dict[str, Any]]:
        """Live injections (JSON)."""
        return [{"code": i.code, "times": i.times, "path": i.path.pattern} for i in self.injections]

    def take_injection(self, path: str) -> MarketoError | None:
        """The injected error for this call, if one is due (uses up one of its ``times``)."""
        with self._lock:
            for item in self.injections:
                if item.path.search(path):
                    item.times -= 1
                    if item.times <= 0:
                        self.injections.remove(item)
                    return MarketoError(item.code, item.message)
        return None

    def admit(self, config: dict[str, Any]) -> None:
        """Check the daily quota and the rate window, and take a concurrency slot.

        Raises:
            MarketoError: 607, 606 or 615. A refused call is not counted (C:MKD).
        """
        now = time.monotonic()
        with self._lock:
            if self.used_today() >= int(config["daily_quota"]):
                raise MarketoError(*errors.DAILY_QUOTA)
            window = float(config["rate_window_s"])
            while self.window and self.window[0] <= now - window:
                self.window.popleft()
            if len(self.window) >= int(config["rate_limit"]):
                code, text = errors.RATE_LIMIT
                raise MarketoError(code, text.format(limit=config["rate_limit"], window=int(window)))
            if self.in_flight >= int(config["max_concurrent"]):
                raise MarketoError(*errors.CONCURRENCY)
            self.in_flight += 1

    def release(self, *, counted: bool) -> None:
        """Give the slot back; a call that ran (``counted``) is charged to rate and quota."""
        with self._lock:
            self.in_flight -= 1
            if counted:
                self.window.append(time.monotonic())
                today = quota_day()
                self.usage[today] = self.usage.get(today, 0) + 1

    def used_today(self) -> int:
        """Calls charged today (US Central day)."""
        return self.usage.get(quota_day(), 0)


def quota_day(now: datetime | None = None) -> date:
    """The quota day a moment belongs to."""
    return (now or datetime.now(UTC)).astimezone(QUOTA_ZONE).date()

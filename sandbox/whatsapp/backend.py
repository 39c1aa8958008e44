"""The WhatsApp emulator's state: users and tokens, which numbers are on WhatsApp, the rate limit."""

from __future__ import annotations

import base64
import binascii
import math
import re
import secrets
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter

from sandbox.emulator import AdminError, EmulatorBackend

DEFAULT_USER = "admin"
DEFAULT_PASSWORD = "whatsapp-sandbox-password"
DEFAULT_TURN_TOKEN = "whatsapp-sandbox-turn-token-0001"
STATUSES = ("valid", "invalid", "processing", "failed")
RULES = ("even_valid", "all_valid", "all_invalid")
DEFAULTS: dict[str, Any] = {
    # Turn's documented default bucket: 60 calls per 60 s (whatsapp.turn.io/docs/api/rate_limiting).
    "rate_limit": 60,
    "rate_window_s": 60.0,
    # On-Premises login tokens last 7 days (WhatsApp On-Premises API reference, users/login).
    "token_lifetime_s": 7 * 24 * 3600.0,
    "max_contacts": 1000,
    "default_country_code": "27",
    "rule": "even_valid",
}
_SEPARATORS = re.compile(r"[\s\-().]")
_BASIC = re.compile(r"^\s*Basic\s+(\S+)\s*$", re.IGNORECASE)
_BEARER = re.compile(r"^\s*Bearer\s+(\S+)\s*$", re.IGNORECASE)


class WhatsAppError(Exception):
    """An error response: ``{"errors": [{"code", "title", "details"}]}``."""

    def __init__(self, status: int, code: int, title: str, details: str) -> None:
        super().__init__(f"{status} {code} {title}: {details}")
        self.status = status
        self.body = {"errors": [{"code": code, "title": title, "details": details}]}


def access_denied(details: str) -> WhatsAppError:
    """401 code 1005, the API's answer to bad credentials and to unknown or expired tokens."""
    return WhatsAppError(401, 1005, "Access denied", details)


class RateWindow:
    """Turn's fixed window: ``limit`` calls, then 429 until the window resets."""

    def __init__(self) -> None:
        self.started = 0.0
        self.used = 0

    def take(self, limit: int, window_s: float) -> tuple[bool, dict[str, str]]:
        """Count one call; returns whether it is allowed and the ``X-Ratelimit-*`` headers."""
        now = time.time()
        if now >= self.started + window_s:
            self.started, self.used = now, 0
        allowed = self.used < limit
        if allowed:
            self.used += 1
        headers = {
            "X-Ratelimit-Bucket": "general",
            "X-Ratelimit-Limit": str(limit),
            "X-Ratelimit-Remaining": str(max(limit - self.used, 0)),
            "X-Ratelimit-Reset": str(math.ceil(self.started + window_s)),
        }
        return allowed, headers


class WhatsAppBackend(EmulatorBackend):
    """Users, API tokens, known numbers, the check cache and the rate window."""

    name = "whatsapp"

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.reset()

    # ---- API-side helpers -------------------------------------------------------------------

    def login(self, header: str | None) -> dict[str, Any]:
        """Check HTTP Basic credentials and issue a token.

        Raises:
            WhatsAppError: 401 for missing or wrong credentials.
        """
        match = _BASIC.match(header or "")
        if not match:
            raise access_denied("Basic authentication is required")
        try:
            user, _, password = base64.b64decode(match.group(1)).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise access_denied("Malformed Basic credentials") from exc
        with self.lock:
            if self.users.get(user) != password:
                raise access_denied("Invalid credentials")
            token = secrets.token_urlsafe(32)
            expires = datetime.now(UTC) + timedelta(seconds=float(self.config["token_lifetime_s"]))
            self.sessions[token] = expires
        return {"token": token, "expires_after": expires.strftime("%Y-%m-%d %H:%M:%S+00:00")}

    def authorize(self, header: str | None) -> None:
        """Accept a live login token or a static (Turn) token.

        Raises:
            WhatsAppError: 401 when the bearer token is missing, unknown or expired.
        """
        match = _BEARER.match(header or "")
        if not match:
            raise access_denied("Bearer token is required")
        token = match.group(1)
        with self.lock:
            if token in self.static_tokens:
                return
            expires = self.sessions.get(token)
            if expires is None or expires <= datetime.now(UTC):
                raise access_denied("Invalid or expired token")

    def rate(self) -> tuple[bool, dict[str, str]]:
        """Count one API call against the general bucket."""
        with self.lock:
            return self.window.take(int(self.config["rate_limit"]), float(self.config["rate_window_s"]))

    def check(self, inputs: list[str], *, wait: bool, force: bool) -> list[dict[str, Any]]:
        """One result per input, in order: ``{input, status, wa_id?}``."""
        results = []
        with self.lock:
            for raw in inputs:
                digits = self.normalize(raw)
                if digits is None:
                    results.append({"input": raw, "status": "invalid"})
                    continue
                cached = self.checked.get(digits)
                status = self.status_of(digits)
                self.checked[digits] = status
                if not wait and (cached is None or force):
                    # no_wait answers from the cache; unknown numbers are looked up in the background.
                    status = "processing"
                result: dict[str, Any] = {"input": raw, "status": status}
                if status == "valid":
                    result["wa_id"] = digits
                results.append(result)
        return results

    def normalize(self, raw: str) -> str | None:
        """The number's digits with country code, or None when it cannot be a phone number.

        Separators (spaces, dashes, dots, parentheses) are dropped. Without ``+`` the number
        is local to the business: a trunk ``0`` is replaced by ``default_country_code``.
        """
        text = _SEPARATORS.sub("", raw)
        if text.startswith("+"):
            digits = text[1:]
        elif text.startswith("00"):
            digits = text[2:]
        else:
            digits = str(self.config["default_country_code"]) + text.removeprefix("0")
        if not digits.isdigit() or not 8 <= len(digits) <= 15:
            return None
        return digits

    def status_of(self, digits: str) -> str:
        """Seeded status, else the configured rule."""
        if digits in self.numbers:
            return self.numbers[digits]
        rule = self.config["rule"]
        if rule == "all_valid":
            return "valid"
        if rule == "all_invalid":
            return "invalid"
        return "valid" if int(digits[-1]) % 2 == 0 else "invalid"

    # ---- EmulatorBackend --------------------------------------------------------------------

    def reset(self) -> None:
        """Default user and Turn token, no sessions, no seeded numbers, default knobs."""
        with self.lock:
            self.users: dict[str, str] = {DEFAULT_USER: DEFAULT_PASSWORD}
            self.static_tokens: set[str] = {DEFAULT_TURN_TOKEN}
            self.sessions: dict[str, datetime] = {}
            self.numbers: dict[str, str] = {}
            self.checked: dict[str, str] = {}
            self.window = RateWindow()
            self.config: dict[str, Any] = dict(DEFAULTS)

    def configure(self, knobs: dict[str, Any]) -> dict[str, Any]:
        """Set knobs (see ``DEFAULTS``); changing the rate limit starts a new window."""
        with self.lock:
            unknown = set(knobs) - set(DEFAULTS)
            if unknown:
                raise AdminError(f"unknown whatsapp knobs: {sorted(unknown)}; known: {sorted(DEFAULTS)}")
            _check_knobs(knobs)
            self.config.update(knobs)
            if "rate_limit" in knobs or "rate_window_s" in knobs:
                self.window = RateWindow()
            return dict(self.config)

    def daily_limit_response(self) -> tuple[int, Any, dict[str, str]]:
        """There is no daily quota; answer as an exhausted rate window."""
        error = too_many_requests()
        reset = str(math.ceil(time.time() + float(self.config["rate_window_s"])))
        headers = {
            "X-Ratelimit-Bucket": "general",
            "X-Ratelimit-Limit": str(self.config["rate_limit"]),
            "X-Ratelimit-Remaining": "0",
            "X-Ratelimit-Reset": reset,
        }
        return error.status, error.body, headers

    def seed(self, body: dict[str, Any]) -> dict[str, Any]:
        """Seed numbers, users, Turn tokens and the rule for unseeded numbers.

        Body: ``{"numbers": {"+27 82 123 4567": "valid", ...}, "users": [{"username", "password"}],
        "tokens": ["<turn token>"], "rule": "even_valid" | "all_valid" | "all_invalid"}``.
        """
        with self.lock:
            numbers = body.get("numbers", {})
            if not isinstance(numbers, dict):
                raise AdminError("numbers must map a phone number to a status")
            staged: dict[str, str] = {}
            for raw, status in numbers.items():
                digits = self.normalize(str(raw))
                if digits is None:
                    raise AdminError(f"{raw!r} is not a phone number")
                if status not in STATUSES:
                    raise AdminError(f"status of {raw!r} must be one of {STATUSES}")
                staged[digits] = status
            users = body.get("users", [])
            for user in users:
                if not (isinstance(user, dict) and user.get("username") and user.get("password")):
                    raise AdminError("each user needs a username and a password")
            tokens = body.get("tokens", [])
            if not all(isinstance(t, str) and len(t) >= 8 for t in tokens):
                raise AdminError("tokens must be strings of at least 8 characters")
            if "rule" in body:
                _check_knobs({"rule": body["rule"]})
                self.config["rule"] = body["rule"]
            self.numbers.update(staged)
            self.users.update({u["username"]: u["password"] for u in users})
            self.static_tokens.update(tokens)
            return {"numbers": sorted(staged), "users": [u["username"] for u in users], "tokens": len(tokens)}

    def state(self, params: dict[str, str]) -> Any:
        """Counts; ``?numbers`` adds the seeded numbers, ``?checked`` every number checked so far."""
        with self.lock:
            result: dict[str, Any] = {
                "sessions": len(self.sessions),
                "live_sessions": sum(1 for e in self.sessions.values() if e > datetime.now(UTC)),
                "seeded": len(self.numbers),
                "checked_count": len(self.checked),
                "rule": self.config["rule"],
                "window_used": self.window.used,
            }
            if "numbers" in params:
                result["numbers"] = dict(self.numbers)
            if "checked" in params:
                result["checked"] = dict(self.checked)
            return result

    def admin_router(self) -> APIRouter:
        """``POST /_sandbox/expire_tokens``: every login token expires now (Turn tokens stay)."""
        router = APIRouter()

        @router.post("/expire_tokens")
        def expire_tokens() -> dict[str, Any]:
            with self.lock:
                past = datetime.now(UTC) - timedelta(seconds=1)
                for token in self.sessions:
                    self.sessions[token] = past
                return {"expired": len(self.sessions)}

        return router


def too_many_requests() -> WhatsAppError:
    """429 code 1015, the WhatsApp Business API's rate-limit error."""
    return WhatsAppError(429, 1015, "Too many requests", "Rate limit of the general bucket reached")


def _check_knobs(knobs: dict[str, Any]) -> None:
    for name in ("rate_limit", "max_contacts"):
        if name in knobs and not (isinstance(knobs[name], int) and knobs[name] >= 0):
            raise AdminError(f"{name} must be a non-negative integer")
    for name in ("rate_window_s", "token_lifetime_s"):
        if name in knobs and not (isinstance(knobs[name], int | float) and knobs[name] > 0):
            raise AdminError(f"{name} must be a positive number of seconds")
    code = knobs.get("default_country_code", "1")
    if not (isinstance(code, str) and code.isdigit() and 1 <= len(code) <= 3):
        raise AdminError("default_country_code must be 1-3 digits, e.g. '27'")
    if "rule" in knobs and knobs["rule"] not in RULES:
        raise AdminError(f"rule must be one of {RULES}")

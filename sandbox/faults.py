"""Fault injection rules and the ASGI middleware that applies them to every emulator."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sandbox.protocol import abort_hook

EFFECTS = ("status", "latency_ms", "drop", "lost_response", "daily_limit_exhausted")


class FaultRuleError(ValueError):
    """A fault rule that cannot be applied."""


@dataclass
class FaultRule:
    """Make the next ``times`` calls matching ``method`` and ``path`` misbehave in one way."""

    path: re.Pattern[str]
    method: str | None
    times: int | None
    effect: str
    status: int = 500
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    latency_ms: int = 0
    hits: int = 0

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> FaultRule:
        """Validate one rule as posted to ``/_sandbox/faults``."""
        if not isinstance(raw, dict):
            raise FaultRuleError("each fault rule must be a JSON object")
        unknown = set(raw) - {"method", "path", "times", "body", "headers", *EFFECTS}
        if unknown:
            raise FaultRuleError(f"unknown fault rule keys: {sorted(unknown)}")
        effects = [name for name in EFFECTS if raw.get(name) not in (None, False)]
        if len(effects) != 1:
            raise FaultRuleError(f"a fault rule needs exactly one effect of {EFFECTS}, got {effects}")
        try:
            pattern = re.compile(raw.get("path") or ".*")
        except re.error as exc:
            raise FaultRuleError(f"bad path regex: {exc}") from exc
        times = raw.get("times", 1)
        if times is not None and (not isinstance(times, int) or times < 1):
            raise FaultRuleError("times must be a positive integer or null (every call)")
        method = raw.get("method")
        rule = cls(
            path=pattern,
            method=method.upper() if method and method != "*" else None,
            times=times,
            effect=effects[0],
        )
        if rule.effect == "status":
            rule.status = int(raw["status"])
            rule.body = raw.get("body")
            rule.headers = {str(k): str(v) for k, v in (raw.get("headers") or {}).items()}
        elif rule.effect == "latency_ms":
            rule.latency_ms = int(raw["latency_ms"])
        return rule

    def matches(self, method: str, path: str) -> bool:
        """Whether a call is covered by this rule (ignoring how many times it has fired)."""
        return (self.method is None or self.method == method) and bool(self.path.search(path))

    def describe(self) -> dict[str, Any]:
        """JSON view for ``GET /_sandbox/faults``."""
        return {
            "method": self.method,
            "path": self.path.pattern,
            "times": self.times,
            "effect": self.effect,
            "hits": self.hits,
        }


class FaultBook:
    """The active rules of one emulator; thread-safe."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()

    def add(self, raw_rules: list[dict[str, Any]]) -> None:
        """Append rules (validated all together before any is added)."""
        if not isinstance(raw_rules, list):
            raise FaultRuleError("POST /_sandbox/faults takes a JSON list of rules")
        parsed = [FaultRule.parse(raw) for raw in raw_rules]
        with self._lock:
            self._rules.extend(parsed)

    def clear(self) -> None:
        """Remove every rule."""
        with self._lock:
            self._rules.clear()

    def take(self, method: str, path: str) -> FaultRule | None:
        """The first live rule matching this call, consuming one of its ``times``."""
        with self._lock:
            for rule in self._rules:
                if rule.matches(method, path):
                    rule.hits += 1
                    if rule.times is not None and rule.hits >= rule.times:
                        self._rules.remove(rule)
                    return rule
        return None

    def describe(self) -> list[dict[str, Any]]:
        """JSON view of the live rules."""
        with self._lock:
            return [rule.describe() for rule in self._rules]


DailyLimitResponder = Callable[[], tuple[int, Any, dict[str, str]]]
ASGIApp = Callable[..., Any]


async def send_json(send: Callable[..., Any], status: int, body: Any, headers: dict[str, str]) -> None:
    """Send a complete JSON (or raw text when ``body`` is a str) response."""
    if isinstance(body, str | bytes):
        payload = body.encode() if isinstance(body, str) else body
        content_type = "text/plain; charset=utf-8"
    elif body is None:
        payload = b""
        content_type = "application/json"
    else:
        payload = json.dumps(body).encode()
        content_type = "application/json"
    raw_headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(payload)).encode())]
    for name, value in headers.items():
        if name.lower() in {"content-type", "content-length"}:
            raw_headers = [h for h in raw_headers if h[0] != name.lower().encode()]
        raw_headers.append((name.lower().encode(), str(value).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": payload})


async def drop_connection(scope: dict[str, Any], receive: Callable[..., Any]) -> None:
    """Abort the client connection without a response and wait until uvicorn notices."""
    abort = abort_hook(scope)
    if abort is None:
        raise RuntimeError("connection drops need sandbox.protocol.DroppableHttpProtocol")
    abort()
    for _ in range(1000):
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        await asyncio.sleep(0)


async def apply_fault(
    rule: FaultRule,
    app: ASGIApp,
    scope: dict[str, Any],
    receive: Callable[..., Any],
    send: Callable[..., Any],
    daily_limit: DailyLimitResponder,
) -> None:
    """Serve one call under ``rule``."""
    if rule.effect == "status":
        await send_json(send, rule.status, rule.body, rule.headers)
    elif rule.effect == "latency_ms":
        await asyncio.sleep(rule.latency_ms / 1000)
        await app(scope, receive, send)
    elif rule.effect == "drop":
        await drop_connection(scope, receive)
    elif rule.effect == "lost_response":
        # The request is fully performed (state changes), but its response never arrives.
        async def swallow(message: dict[str, Any]) -> None:
            return None

        await app(scope, receive, swallow)
        await drop_connection(scope, receive)
    elif rule.effect == "daily_limit_exhausted":
        status, body, headers = daily_limit()
        await send_json(send, status, body, headers)
    else:  # parse() only admits EFFECTS
        raise AssertionError(rule.effect)

"""A small client for the ``/_sandbox/`` admin API that every ASGI emulator serves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import requests


def sandbox_session(ca_path: Path | None) -> requests.Session:
    """A requests session that trusts the sandbox CA and ignores ``REQUESTS_CA_BUNDLE``.

    requests lets ``REQUESTS_CA_BUNDLE`` override ``session.verify`` unless ``trust_env`` is
    off (reference/airflow3.md section 4), so both are set here.
    """
    session = requests.Session()
    session.trust_env = False
    if ca_path is not None:
        session.verify = str(ca_path)
    return session


class AdminError(RuntimeError):
    """The admin API refused a request."""


class AdminClient:
    """Calls ``<base_url>/_sandbox/...``; every method raises AdminError on a non-2xx answer."""

    def __init__(self, base_url: str, session: requests.Session, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.timeout = timeout

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.session.request(
            method, f"{self.base_url}/_sandbox/{path}", timeout=self.timeout, **kwargs
        )
        if not response.ok:
            raise AdminError(f"{method} /_sandbox/{path} -> {response.status_code}: {response.text}")
        return response.json() if response.content else None

    def health(self) -> dict[str, Any]:
        """``GET /_sandbox/health``."""
        return self._call("GET", "health")

    def reset(self) -> None:
        """Drop all data, configuration, faults and call counts."""
        self._call("POST", "reset")

    def seed(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Load records (per-service format, see sandbox/README.md); returns what was created."""
        return self._call("POST", "seed", json=dict(payload))

    def state(self, **params: Any) -> Any:
        """Stored data, e.g. ``state(object="Contact")``."""
        return self._call("GET", "state", params=params)

    def calls(self) -> dict[str, Any]:
        """``{"total": n, "by_route": {"GET /path/{template}": n}}`` since the last reset."""
        return self._call("GET", "calls")

    def reset_calls(self) -> None:
        """Zero the call counts."""
        self._call("POST", "calls/reset")

    def faults(self, rules: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Add fault rules; returns the live rules."""
        return self._call("POST", "faults", json=[dict(rule) for rule in rules])

    def clear_faults(self) -> None:
        """Remove every fault rule."""
        self._call("DELETE", "faults")

    def config(self, **knobs: Any) -> dict[str, Any]:
        """Set per-service knobs (none: just read them); returns the full configuration."""
        return self._call("POST", "config", json=knobs)

    def action(self, name: str, body: Mapping[str, Any] | None = None) -> Any:
        """A service-specific admin endpoint, e.g. ``action("expire_tokens")``."""
        return self._call("POST", name, json=dict(body or {}))

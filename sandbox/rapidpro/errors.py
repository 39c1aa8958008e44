"""RapidPro's error responses: DRF envelopes (``{"field": ["msg"]}`` or ``{"detail": "msg"}``)."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error response the API answers instead of a result."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body
        self.headers = headers or {}


def detail(status: int, message: str, headers: dict[str, str] | None = None) -> ApiError:
    """``{"detail": message}`` with ``status`` (DRF's top-level errors)."""
    return ApiError(status, {"detail": message}, headers)


def not_found() -> ApiError:
    """404 as DRF renders it."""
    return detail(404, "Not found.")


class Errors:
    """Collects field errors of one request body, rendered as DRF does."""

    def __init__(self) -> None:
        self.body: dict[str, Any] = {}

    def add(self, field: str, message: str) -> None:
        """``{"field": ["message", ...]}``."""
        self.body.setdefault(field, []).append(message)

    def add_item(self, field: str, item: str, message: str) -> None:
        """``{"field": {"item": ["message"]}}``: an error of one list index or dict key."""
        nested = self.body.setdefault(field, {})
        if isinstance(nested, dict):
            nested.setdefault(item, []).append(message)

    def __bool__(self) -> bool:
        return bool(self.body)

    def raise_if_any(self) -> None:
        """Raise a 400 carrying every error collected."""
        if self.body:
            raise ApiError(400, self.body)

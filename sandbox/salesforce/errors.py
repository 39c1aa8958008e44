"""Salesforce error shapes: top-level ``[{message, errorCode, fields}]`` and per-row ``statusCode``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SfError:
    """One Salesforce error (a row error in results, or the body of a failed call)."""

    code: str
    message: str
    fields: list[str] = field(default_factory=list)

    def as_row(self) -> dict[str, Any]:
        """Per-record shape used in sObject Collections results."""
        return {"statusCode": self.code, "message": self.message, "fields": list(self.fields)}

    def as_top(self) -> dict[str, Any]:
        """Top-level shape used in a 4xx body."""
        return {"message": self.message, "errorCode": self.code, "fields": list(self.fields)}

    def as_bulk(self) -> str:
        """Bulk 2.0 ``sf__Error`` text: ``CODE:message:fields --``."""
        return f"{self.code}:{self.message}:{','.join(self.fields)} --"


class ApiError(Exception):
    """Answer the call with ``status`` and a top-level error list."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: list[str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.errors = [SfError(code, message, fields or [])]
        self.headers = headers or {}

    @classmethod
    def from_errors(cls, status: int, errors: list[SfError]) -> ApiError:
        """Wrap row errors as the body of a failed single-record call."""
        first = errors[0]
        exc = cls(status, first.code, first.message, first.fields)
        exc.errors = list(errors)
        return exc

    def body(self) -> list[dict[str, Any]]:
        """The JSON body."""
        return [error.as_top() for error in self.errors]


def not_found() -> ApiError:
    """404 for unknown resources, as Salesforce words it."""
    return ApiError(404, "NOT_FOUND", "The requested resource does not exist")

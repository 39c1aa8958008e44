"""Pipedrive's error answers: HTTP 4xx with ``{success: false, error, error_info, data, additional_data}``."""

from __future__ import annotations

from typing import Any

ERROR_INFO = "Please check developers.pipedrive.com for more information about Pipedrive API."


class ApiError(Exception):
    """An error response the API answers instead of a result."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status}: {body.get('error')}")
        self.status = status
        self.body = body
        self.headers = headers or {}


def error(status: int, message: str, headers: dict[str, str] | None = None, **extra: Any) -> ApiError:
    """The common envelope (api-contracts.md section 3.2)."""
    body = {
        "success": False,
        "error": message,
        "error_info": ERROR_INFO,
        "data": None,
        "additional_data": None,
    }
    return ApiError(status, {**body, **extra}, headers)


def unauthorized() -> ApiError:
    """401 exactly as observed live (api-contracts.md section 3.2)."""
    return ApiError(
        401,
        {
            "success": False,
            "error": "unauthorized access",
            "errorCode": 401,
            "error_info": "Please check developers.pipedrive.com",
        },
    )


def bad_request(message: str) -> ApiError:
    """400 validation error."""
    return error(400, message, code="ERR_SCHEMA_VALIDATION_FAILED")


def not_found(entity_label: str) -> ApiError:
    """404 for an id that never existed."""
    return error(404, f"{entity_label} not found")


def gone(entity_label: str) -> ApiError:
    """410 for a deleted entity (the original sync tolerated a 410 on delete)."""
    return error(410, f"{entity_label} is deleted")

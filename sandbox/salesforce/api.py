"""Plumbing shared by the Salesforce routes: API context (version, auth, limits), JSON bodies."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from sandbox.salesforce.backend import MAX_VERSION, MIN_VERSION, SalesforceBackend
from sandbox.salesforce.errors import ApiError, not_found

API_PREFIX = "/services/data/v{version}"
_VERSION_RE = re.compile(r"^\d{2}\.0$")
T = TypeVar("T")


@dataclass(frozen=True)
class ApiContext:
    """One authenticated, counted API call."""

    backend: SalesforceBackend
    version: str

    @property
    def version_number(self) -> float:
        """The API version as a number, e.g. 62.0."""
        return float(self.version)


def check_version(version: str) -> str:
    """Accept ``42.0`` to ``62.0``; anything else is 404 NOT_FOUND, as for an unknown resource."""
    if not _VERSION_RE.match(version) or not MIN_VERSION <= float(version) <= MAX_VERSION:
        raise not_found()
    return version


def api_context(request: Request, version: str) -> ApiContext:
    """Validate the version and bearer token and charge the call against the daily limit."""
    backend: SalesforceBackend = request.app.state.backend
    check_version(version)
    backend.authenticate(request.headers.get("authorization"))
    backend.charge_api_call()
    return ApiContext(backend=backend, version=version)


async def json_body(request: Request) -> Any:
    """The parsed JSON body, or 400 JSON_PARSER_ERROR."""
    raw = await request.body()
    if not raw.strip():
        raise ApiError(400, "JSON_PARSER_ERROR", "The request body is empty")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ApiError(400, "JSON_PARSER_ERROR", f"Unexpected character in request body: {exc}") from exc


async def offload(fn: Callable[..., T], *args: Any) -> T:
    """Run store work on a worker thread so a long Bulk job never stalls the event loop."""
    return await run_in_threadpool(fn, *args)

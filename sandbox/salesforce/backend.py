"""State of one Salesforce emulator: records, tokens, API usage, query cursors, Bulk jobs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter

from sandbox.emulator import AdminError, EmulatorBackend
from sandbox.salesforce.config import SfConfig
from sandbox.salesforce.dml import Dml, now_utc
from sandbox.salesforce.errors import ApiError, SfError
from sandbox.salesforce.ids import IdFactory
from sandbox.salesforce.query import Compiled
from sandbox.salesforce.schema import ObjectSchema, load_schemas
from sandbox.salesforce.store import Store
from sandbox.salesforce.values import to_json

USERNAME = "sandbox@crm-sync.test"
PASSWORD = "sandbox-password"
SECURITY_TOKEN = "SANDBOXTOKEN"
CLIENT_ID = "crm-sync-sandbox-client-id"
CLIENT_SECRET = "crm-sync-sandbox-client-secret"
ORG_ID = "00D000000000001EAA"
USER_ID = "005000000000001AAA"
API_VERSION = "62.0"
MIN_VERSION, MAX_VERSION = 42.0, 62.0
BULK_BATCHES_MAX = 15_000
BULK_QUERY_JOBS_MAX = 10_000
MAX_CURSORS = 100


@dataclass
class Cursor:
    """Rows of a REST query still to be paged through ``nextRecordsUrl``."""

    compiled: Compiled
    rows: list[tuple[Any, ...]]
    batch_size: int
    total: int


@dataclass
class Usage:
    """Daily counters behind ``/limits`` and ``Sforce-Limit-Info``."""

    api_requests: int = 0
    bulk_batches: int = 0
    bulk_query_jobs: int = 0


@dataclass
class TokenInfo:
    """An issued access token."""

    expires_at: float
    user_id: str = USER_ID
    scope: str = "api"
    meta: dict[str, Any] = field(default_factory=dict)


class SalesforceBackend(EmulatorBackend):
    """Everything the Salesforce routes share."""

    name = "salesforce"

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.schemas: dict[str, ObjectSchema] = load_schemas()
        self.store = Store(self.schemas)
        self.ids = IdFactory()
        self.config = SfConfig()
        self.usage = Usage()
        self.tokens: dict[str, TokenInfo] = {}
        self.cursors: OrderedDict[str, Cursor] = OrderedDict()
        self.state_lock = threading.RLock()
        self.dml = Dml(self.store, self.ids, lambda: self.config, USER_ID)
        # Bulk jobs live in sandbox.salesforce.bulk; imported late to keep this module small.
        from sandbox.salesforce.bulk import BulkJobs

        self.bulk = BulkJobs(self)
        self._seed_defaults()

    # -- lifecycle -------------------------------------------------------------------------

    def _seed_defaults(self) -> None:
        with self.store.transaction():
            outcome = self.dml.insert(
                self.schemas["User"],
                {
                    "Id": USER_ID,
                    "Username": USERNAME,
                    "LastName": "Integration",
                    "FirstName": "crm_sync",
                    "Email": USERNAME,
                    "Alias": "crmsync",
                },
                allow_id=True,
            )
        assert outcome.success, outcome.errors

    def reset(self) -> None:
        """Drop records, tokens, cursors, jobs, usage and configuration."""
        self.bulk.reset()
        with self.state_lock:
            self.store.reset()
            self.dml.reset()
            self.config = SfConfig()
            self.usage = Usage()
            self.tokens.clear()
            self.cursors.clear()
        self._seed_defaults()

    def close(self) -> None:
        """Stop the Bulk worker."""
        self.bulk.close()

    # -- admin -----------------------------------------------------------------------------

    def object_schema(self, name: str) -> ObjectSchema:
        """Schema by name (any case) or AdminError."""
        for obj in self.schemas.values():
            if obj.name.lower() == str(name).lower():
                return obj
        raise AdminError(f"unknown object {name!r}; known: {sorted(self.schemas)}")

    def seed(self, body: dict[str, Any]) -> dict[str, Any]:
        """Insert records object by object, atomically; validation applies."""
        unknown = set(body) - {"objects", "automation"}
        if unknown:
            raise AdminError(f"unknown seed keys {sorted(unknown)}; expected 'objects' and 'automation'")
        objects = body.get("objects") or {}
        if not isinstance(objects, dict):
            raise AdminError('seed takes {"objects": {"Contact": [{...}], ...}}')
        automation = body.get("automation")
        if automation is not None and not isinstance(automation, bool):
            raise AdminError("automation must be true or false")
        created: dict[str, list[str]] = {}
        failures: list[dict[str, Any]] = []
        with self.store.transaction():
            self.dml.automation_enabled = automation
            try:
                for name, records in objects.items():
                    obj = self.object_schema(name)
                    if not isinstance(records, list):
                        raise AdminError(f"{name}: records must be a list")
                    for index, record in enumerate(records):
                        if not isinstance(record, dict):
                            raise AdminError(f"{name}[{index}] is not an object")
                        try:
                            outcome = self.dml.insert(obj, record, allow_id=True)
                        except ApiError as exc:
                            raise AdminError(f"{name}[{index}]: {exc}") from exc
                        if outcome.success:
                            created.setdefault(obj.name, []).append(outcome.id or "")
                        else:
                            failures.append(
                                {
                                    "object": obj.name,
                                    "index": index,
                                    "errors": [e.as_row() for e in outcome.errors],
                                }
                            )
                if failures:
                    raise AdminError("seed rejected: some records are invalid; nothing was stored", failures)
            finally:
                self.dml.automation_enabled = None
                self.dml.reset()
        return {"ids": created}

    def state(self, params: dict[str, str]) -> Any:
        """Rows of one object, record counts, or Bulk jobs."""
        if "jobs" in params:
            return {"jobs": self.bulk.describe(params["jobs"])}
        if "object" not in params:
            return {"counts": {name: self.store.count(obj) for name, obj in self.schemas.items()}}
        obj = self.object_schema(params["object"])
        include_deleted = params.get("include_deleted", "").lower() in {"1", "true", "yes"}
        rows = self.store.rows(obj, include_deleted=include_deleted)
        records = [{name: to_json(obj.fields[name], value) for name, value in row.items()} for row in rows]
        return {"object": obj.name, "totalSize": len(records), "records": records}

    def configure(self, knobs: dict[str, Any]) -> dict[str, Any]:
        """Set knobs; ``api_usage`` sets the used-request counter."""
        knobs = dict(knobs)
        usage = knobs.pop("api_usage", None)
        stages = self.schemas["Opportunity"].fields["StageName"].values
        with self.state_lock:
            self.config.apply(knobs, stages)
            if usage is not None:
                if not isinstance(usage, int) or usage < 0:
                    raise AdminError("api_usage must be a non-negative integer")
                self.usage.api_requests = usage
            return {**self.config.as_dict(), "api_usage": self.usage.api_requests}

    def daily_limit_response(self) -> tuple[int, Any, dict[str, str]]:
        """403 REQUEST_LIMIT_EXCEEDED, with usage shown as fully used."""
        limit = self.config.daily_api_limit
        return (
            403,
            [{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "TotalRequests Limit exceeded."}],
            {"Sforce-Limit-Info": f"api-usage={limit}/{limit}"},
        )

    def admin_router(self) -> APIRouter:
        """``POST /_sandbox/expire_tokens``."""
        router = APIRouter()

        @router.post("/expire_tokens")
        def expire_tokens() -> dict[str, Any]:
            with self.state_lock:
                count = len(self.tokens)
                for info in self.tokens.values():
                    info.expires_at = 0
            return {"expired": count}

        return router

    # -- auth and limits -------------------------------------------------------------------

    def issue_token(self, *, scope: str | None) -> dict[str, Any]:
        """A new access token and the OAuth success body (client credentials add ``scope``)."""
        token = f"{ORG_ID[:15]}!{secrets.token_urlsafe(48)}"
        issued_at = str(int(time.time() * 1000))
        identity = f"{self.base_url}/id/{ORG_ID}/{USER_ID}"
        with self.state_lock:
            self.tokens[token] = TokenInfo(
                expires_at=time.time() + self.config.token_lifetime_s, scope=scope or "api"
            )
        signature = base64.b64encode(
            hmac.new(CLIENT_SECRET.encode(), (identity + issued_at).encode(), hashlib.sha256).digest()
        ).decode()
        body = {
            "access_token": token,
            "instance_url": self.base_url,
            "id": identity,
            "token_type": "Bearer",
            "issued_at": issued_at,
            "signature": signature,
        }
        if scope is not None:
            body["scope"] = scope
        return body

    def authenticate(self, authorization: str | None) -> None:
        """Check a ``Bearer`` header; 401 INVALID_SESSION_ID when missing, unknown or expired."""
        token = ""
        if authorization and authorization.lower().startswith(("bearer ", "oauth ")):
            token = authorization.split(" ", 1)[1].strip()
        with self.state_lock:
            info = self.tokens.get(token)
            if info is None or info.expires_at <= time.time():
                raise ApiError(401, "INVALID_SESSION_ID", "Session expired or invalid")

    def charge_api_call(self) -> None:
        """Count one API request, or 403 REQUEST_LIMIT_EXCEEDED when the daily limit is used up."""
        with self.state_lock:
            if self.usage.api_requests >= self.config.daily_api_limit:
                raise ApiError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
            self.usage.api_requests += 1

    def limit_info(self) -> str:
        """Value of the ``Sforce-Limit-Info`` header."""
        return f"api-usage={self.usage.api_requests}/{self.config.daily_api_limit}"

    def limits(self) -> dict[str, Any]:
        """Body of ``GET /limits``."""
        limit = self.config.daily_api_limit
        return {
            "DailyApiRequests": {"Max": limit, "Remaining": max(0, limit - self.usage.api_requests)},
            "DailyBulkApiBatches": {
                "Max": BULK_BATCHES_MAX,
                "Remaining": BULK_BATCHES_MAX - self.usage.bulk_batches,
            },
            "DailyBulkV2QueryJobs": {
                "Max": BULK_QUERY_JOBS_MAX,
                "Remaining": BULK_QUERY_JOBS_MAX - self.usage.bulk_query_jobs,
            },
            "DailyBulkV2QueryFileStorageMB": {"Max": 976562, "Remaining": 976562},
        }

    # -- query cursors ---------------------------------------------------------------------

    def open_cursor(self, cursor: Cursor) -> str:
        """Register a cursor; returns its locator id (``01g…``)."""
        locator = self.ids.new("01g")
        with self.state_lock:
            self.cursors[locator] = cursor
            while len(self.cursors) > MAX_CURSORS:
                self.cursors.popitem(last=False)
        return locator

    def cursor(self, locator: str) -> Cursor:
        """A live cursor, or 400 INVALID_QUERY_LOCATOR."""
        with self.state_lock:
            found = self.cursors.get(locator)
        if found is None:
            raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return found

    def close_cursor(self, locator: str) -> None:
        """Forget a cursor whose last batch was served."""
        with self.state_lock:
            self.cursors.pop(locator, None)

    def today(self) -> Any:
        """Today's date in UTC (the org's timezone)."""
        return now_utc().date()

    @staticmethod
    def row_error(errors: list[SfError]) -> list[dict[str, Any]]:
        """Per-row error list."""
        return [error.as_row() for error in errors]

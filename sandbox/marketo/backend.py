"""The Marketo emulator's state, knobs and admin hooks."""

from __future__ import annotations

import copy
import threading
from typing import Any

from fastapi import APIRouter, Request

from sandbox.emulator import AdminError, EmulatorBackend
from sandbox.marketo import errors
from sandbox.marketo.errors import RecordError
from sandbox.marketo.limits import Limits, quota_day
from sandbox.marketo.schema import (
    DATA_TYPES,
    OBJECT_TYPES,
    FieldDef,
    coerce,
    format_datetime,
    parse_datetime,
)
from sandbox.marketo.store import API_SOURCE, Store

CLIENT_ID = "marketo-sandbox-client-id"
CLIENT_SECRET = "marketo-sandbox-client-secret"
MUNCHKIN_ID = "123-ABC-456"
DEFAULTS: dict[str, Any] = {
    "client_id": CLIENT_ID,
    "client_secret": CLIENT_SECRET,
    "token_lifetime_s": 3600,
    "rate_limit": 100,
    "rate_window_s": 20.0,
    "max_concurrent": 10,
    "daily_quota": 50_000,
    "latency_ms": 0,
}
SEED_OBJECTS = {"companies": "companies", "opportunities": "opportunities", "roles": "opportunities/roles"}
STATE_LISTS = ("leads", "companies", "opportunities", "roles", "activities")
UI_SOURCE = "Person Details Page"


class MarketoBackend(EmulatorBackend):
    """One Marketo instance: data, limits and knobs."""

    name = "marketo"

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.limits = Limits()
        self.store = Store()
        self.config: dict[str, Any] = {}
        self.reset()

    def reset(self) -> None:
        """Back to an empty instance with the default schema and knobs."""
        with self.lock:
            self.store = Store()
            self.limits.reset()
            self.config = dict(DEFAULTS)

    def configure(self, knobs: dict[str, Any]) -> dict[str, Any]:
        """Set knobs (see README); unknown names are refused."""
        with self.lock:
            unknown = set(knobs) - set(DEFAULTS)
            if unknown:
                raise AdminError(f"unknown marketo knobs: {sorted(unknown)}; known: {sorted(DEFAULTS)}")
            for name, value in knobs.items():
                if name.startswith("client_"):
                    if not isinstance(value, str) or not value:
                        raise AdminError(f"{name} must be a non-empty string")
                elif isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                    raise AdminError(f"{name} must be a non-negative number")
            self.config.update(knobs)
            return dict(self.config)

    def daily_limit_response(self) -> tuple[int, Any, dict[str, str]]:
        """Marketo answers a spent daily quota with HTTP 200 and error 607."""
        return 200, errors.failure(*errors.DAILY_QUOTA), {}

    # ---- seed and state ------------------------------------------------------------------------

    def seed(self, body: dict[str, Any]) -> dict[str, Any]:
        """Load fields, custom activity types, leads and objects; all or nothing."""
        with self.lock:
            store = copy.deepcopy(self.store)
            created: dict[str, list[Any]] = {"fields": [], "activity_types": [], "leads": []}
            for raw in _items(body, "fields"):
                created["fields"].append(_seed_field(store, raw))
            for raw in _items(body, "activity_types"):
                created["activity_types"].append(_seed_activity_type(store, raw))
            log = bool(body.get("log_activities", False))
            logged_before = len(store.activities.items)
            for index, raw in enumerate(_items(body, "leads")):
                created["leads"].append(_seed_lead(store, raw, index, log_activities=log))
            for key, path in SEED_OBJECTS.items():
                records = _items(body, key)
                if not records:
                    continue
                results = store.sync_objects(OBJECT_TYPES[path], {"action": "createOnly", "input": records})
                bad = [r for r in results if r["status"] == "skipped"]
                if bad:
                    raise AdminError(f"{key}[{bad[0]['seq']}] was refused", details=bad[0]["reasons"])
                created[key] = [r[OBJECT_TYPES[path].id_field] for r in results]
            if not log:
                # Seeded data is history, not news: no activity for the sync to pick up.
                del store.activities.items[logged_before:]
            self.store = store
            return created

    def state(self, params: dict[str, str]) -> Any:
        """``?leads``, ``?companies``, ``?opportunities``, ``?roles``, ``?activities`` or the counts."""
        with self.lock:
            store = self.store
            lists = {
                "leads": lambda: list(store.leads.values()),
                "companies": lambda: list(store.objects["companies"].values()),
                "opportunities": lambda: list(store.objects["opportunities"].values()),
                "roles": lambda: list(store.objects["opportunities/roles"].values()),
                "activities": lambda: [a.to_json() for a in store.activities.items],
            }
            wanted = [name for name in STATE_LISTS if name in params]
            if wanted:
                return {name: copy.deepcopy(lists[name]()) for name in wanted}
            return {
                "counts": {name: len(lists[name]()) for name in STATE_LISTS},
                "usage": {"date": quota_day().isoformat(), "calls": self.limits.used_today()},
                "tokens": len(self.limits.tokens),
                "injections": self.limits.describe_injections(),
            }

    def admin_router(self) -> APIRouter:
        """``expire_tokens``, ``inject`` and ``edit_lead`` (a change made by a user in Marketo)."""
        router = APIRouter()

        @router.post("/expire_tokens")
        def expire_tokens() -> dict[str, Any]:
            return {"expired": self.limits.expire_all()}

        @router.post("/inject")
        async def inject(request: Request) -> list[dict[str, Any]]:
            body = await request.json()
            code = str(body.get("code", ""))
            times = body.get("times", 1)
            if not code.isdigit() or not isinstance(times, int) or times < 1:
                raise AdminError("inject takes {code: '606', times: N >= 1, path?: regex, message?}")
            return self.limits.inject(code, times, body.get("path"), body.get("message"))

        @router.post("/edit_lead")
        async def edit_lead(request: Request) -> dict[str, Any]:
            body = await request.json()
            with self.lock:
                lead = self.store.leads.get(body.get("id"))
                if lead is None:
                    raise AdminError(f"no lead with id {body.get('id')!r}")
                fields = body.get("fields") or {}
                values = _checked_values(self.store, fields, "edit_lead", writable_only=False)
                changed = self.store.update_lead(lead, values, str(body.get("source") or UI_SOURCE))
                return {"id": lead["id"], "changed": changed, "updatedAt": lead["updatedAt"]}

        return router


def _items(body: dict[str, Any], key: str) -> list[Any]:
    value = body.get(key, [])
    if not isinstance(value, list):
        raise AdminError(f"seed {key!r} must be a list")
    return value


def _checked_values(store: Store, raw: Any, where: str, *, writable_only: bool) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise AdminError(f"{where} must be an object of lead fields")
    values = {}
    for name, value in raw.items():
        spec = store.lead_fields.get(name)
        if spec is None or name in ("id", "createdAt", "updatedAt"):
            raise AdminError(f"{where}: lead field {name!r} is unknown or system-managed")
        if writable_only and spec.read_only:
            continue
        try:
            values[name] = coerce(spec, value)
        except RecordError as exc:
            raise AdminError(f"{where}: field {name!r}: {exc.code} {exc.message}") from exc
    return values


def _seed_field(store: Store, raw: Any) -> str:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"]:
        raise AdminError("a seeded field needs a name")
    data_type = raw.get("dataType", "string")
    if data_type not in DATA_TYPES:
        raise AdminError(f"field {raw['name']!r}: dataType must be one of {DATA_TYPES}")
    spec = FieldDef(
        name=raw["name"],
        data_type=data_type,
        display_name=str(raw.get("displayName") or ""),
        length=raw.get("length", 255 if data_type in ("string", "email", "phone", "url") else None),
        read_only=bool(raw.get("readOnly", False)),
        searchable=bool(raw.get("searchable", data_type in ("string", "email", "integer"))),
    )
    return store.add_lead_field(spec).name


def _seed_activity_type(store: Store, raw: Any) -> int:
    needed = ("id", "apiName", "name", "primaryAttribute")
    if not isinstance(raw, dict) or any(raw.get(k) in (None, "") for k in needed):
        raise AdminError(f"an activity type needs {needed}")
    type_def = {"status": "approved", "attributes": [], "description": "", **raw}
    store.custom_types[int(raw["id"])] = type_def
    return int(raw["id"])


def _seed_lead(store: Store, raw: Any, index: int, *, log_activities: bool) -> int:
    if not isinstance(raw, dict):
        raise AdminError(f"leads[{index}] must be an object")
    lead_id = raw.get("id")
    if lead_id is not None and (not isinstance(lead_id, int) or lead_id < 1 or lead_id in store.leads):
        raise AdminError(f"leads[{index}]: id must be a new positive integer")
    fields = {k: v for k, v in raw.items() if k not in ("id", "createdAt", "updatedAt")}
    values = _checked_values(store, fields, f"leads[{index}]", writable_only=False)
    lead = store.create_lead(values, "Seed" if log_activities else API_SOURCE, lead_id=lead_id)
    store.last_lead_id = max(store.last_lead_id, lead["id"])
    for stamp in ("createdAt", "updatedAt"):
        if raw.get(stamp):
            try:
                lead[stamp] = format_datetime(parse_datetime(raw[stamp]))
            except ValueError as exc:
                raise AdminError(f"leads[{index}]: {stamp} is not an ISO datetime") from exc
    return lead["id"]

"""The Pipedrive emulator's state and admin hooks: the company, auth, limits, webhooks."""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request

from sandbox.emulator import AdminError, EmulatorBackend
from sandbox.pipedrive.errors import ApiError, bad_request, error, unauthorized
from sandbox.pipedrive.limits import Limits
from sandbox.pipedrive.models import ENTITIES, SINGULAR, parse_rfc3339
from sandbox.pipedrive.store import OWNER_ID, Company, Event
from sandbox.pipedrive.webhooks import (
    EVENT_ACTIONS,
    EVENT_OBJECTS,
    MAX_WEBHOOKS,
    Deliverer,
    Webhook,
    payload,
)

DEFAULT_TOKEN = "pipedrive-sandbox-token-0001"
COMPANY_DOMAIN = "sandbox"
DEFAULTS: dict[str, Any] = {
    "api_token": DEFAULT_TOKEN,
    "daily_token_budget": 1_000_000,
    "burst_limit": 80,
    "nominal_burst_limit": 80,
    "daily_write_limit": 10_000,
}
STATE_LISTS = ("webhooks", "deliveries", "users", "pipelines")


class PipedriveBackend(EmulatorBackend):
    """One company, one API token (its owner is user 1001), knobs, limits and webhooks."""

    name = "pipedrive"

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.config: dict[str, Any] = dict(DEFAULTS)
        self.limits = Limits(self.config)
        self.deliverer = Deliverer()
        self.webhooks: dict[int, Webhook] = {}
        self.company = Company(self._emit)
        self.reset()

    # ---- API-side helpers -------------------------------------------------------------------

    def begin(self, request: Request, kind: str, *, v2: bool) -> dict[str, str]:
        """Authenticate (``x-api-token``; v1 also ``?api_token=``), then charge the limits.

        Returns:
            The rate-limit headers for the response.

        Raises:
            ApiError: 401 for a missing or wrong token; 429 from the limits.
        """
        token = request.headers.get("x-api-token")
        if token is None and not v2:
            token = request.query_params.get("api_token")
        if token != self.config["api_token"]:
            raise unauthorized()
        return self.limits.admit(request.method, kind)

    def _emit(self, event: Event) -> None:
        action, entity, entity_id, data, previous, source, user_id = event
        for webhook in self.webhooks.values():
            if webhook.version == "2.0" and webhook.matches(action, SINGULAR[entity]):
                body = payload(
                    webhook,
                    action=action,
                    entity=SINGULAR[entity],
                    entity_id=entity_id,
                    data=data,
                    previous=previous,
                    change_source=source,
                    user_id=user_id,
                    host=f"{COMPANY_DOMAIN}.pipedrive.com",
                )
                self.deliverer.enqueue(webhook, body)

    def add_webhook(self, body: Any) -> Webhook:
        """Validate ``POST /v1/webhooks`` and subscribe."""
        if not isinstance(body, Mapping):
            raise bad_request("request body must be a JSON object")
        url = body.get("subscription_url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise bad_request("subscription_url must be an http(s) URL")
        action, entity = body.get("event_action"), body.get("event_object")
        if action not in EVENT_ACTIONS:
            raise bad_request(f"event_action must be one of {list(EVENT_ACTIONS)}")
        if entity not in EVENT_OBJECTS:
            raise bad_request(f"event_object must be one of {list(EVENT_OBJECTS)}")
        version = str(body.get("version", "2.0"))
        if version not in {"1.0", "2.0"}:
            raise bad_request("version must be 1.0 or 2.0")
        if len(self.webhooks) >= MAX_WEBHOOKS:
            raise error(400, f"The limit of {MAX_WEBHOOKS} webhooks per user is reached")
        webhook = Webhook(
            id=max(self.webhooks, default=0) + 1,
            subscription_url=url,
            event_action=str(action),
            event_object=str(entity),
            user_id=int(body.get("user_id") or OWNER_ID),
            version=version,
            name=body.get("name"),
            http_auth_user=body.get("http_auth_user"),
            http_auth_password=body.get("http_auth_password"),
        )
        self.webhooks[webhook.id] = webhook
        return webhook

    # ---- EmulatorBackend --------------------------------------------------------------------

    def reset(self) -> None:
        """Back to the default company (users, pipelines, default custom fields), no records."""
        with self.lock:
            self.config.clear()
            self.config.update(DEFAULTS)
            self.limits.reset()
            self.webhooks.clear()
            self.deliverer.clear()
            self.company = Company(self._emit)

    def configure(self, knobs: dict[str, Any]) -> dict[str, Any]:
        """Set knobs: ``api_token``, ``daily_token_budget``, ``burst_limit``, ``daily_write_limit``."""
        with self.lock:
            unknown = set(knobs) - set(DEFAULTS)
            if unknown:
                raise AdminError(f"unknown pipedrive knobs: {sorted(unknown)}; known: {sorted(DEFAULTS)}")
            for name in ("daily_token_budget", "daily_write_limit", "nominal_burst_limit"):
                if name in knobs and not (isinstance(knobs[name], int) and knobs[name] >= 0):
                    raise AdminError(f"{name} must be a non-negative integer")
            limit = knobs.get("burst_limit")
            if limit is not None and not (isinstance(limit, int) and limit >= 1):
                raise AdminError("burst_limit must be null (off) or a positive integer")
            self.config.update(knobs)
            return dict(self.config)

    def daily_limit_response(self) -> tuple[int, Any, dict[str, str]]:
        """The 429 of a spent daily token budget."""
        exc = self.limits.budget_exhausted()
        return exc.status, exc.body, exc.headers

    def seed(self, body: dict[str, Any]) -> dict[str, Any]:
        """Load users, pipelines, custom fields and records (no webhooks fire); all or nothing.

        Records take the v2 write body plus optional ``custom`` (values by field *name*) and
        ``add_time``/``update_time`` (RFC 3339) to place them in a sync window.
        """
        with self.lock:
            saved = self.company
            staging = Company(lambda _event: None)
            staging.__dict__.update({k: _copy(v) for k, v in saved.__dict__.items() if k != "emit"})
            created: dict[str, Any] = {"users": [], "pipelines": [], "fields": {}}
            try:
                for raw in _list(body, "users"):
                    created["users"].append(staging.add_user(raw))
                for raw in _list(body, "pipelines"):
                    created["pipelines"].append(staging.add_pipeline(raw))
                for entity, fields in (body.get("fields") or {}).items():
                    if entity not in ENTITIES:
                        raise AdminError(f"fields: unknown entity {entity!r}; known: {list(ENTITIES)}")
                    created["fields"][entity] = {
                        f.name: f.key for f in (staging.add_field(entity, raw) for raw in fields)
                    }
                for entity in ENTITIES:
                    created[entity] = [
                        self._seed_record(staging, entity, raw, index)
                        for index, raw in enumerate(_list(body, entity))
                    ]
            except ValueError as exc:
                raise AdminError(str(exc)) from exc
            staging.emit = self._emit
            self.company = staging
            created["field_keys"] = {
                entity: {f.name: f.key for f in staging.fields[entity] if f.is_custom} for entity in ENTITIES
            }
            return created

    def _seed_record(self, company: Company, entity: str, raw: Any, index: int) -> int:
        if not isinstance(raw, dict):
            raise AdminError(f"{entity}[{index}] must be an object")
        body = {k: v for k, v in raw.items() if k not in {"custom", "update_time", "id"}}
        by_name = {f.name: f.key for f in company.fields[entity] if f.is_custom}
        custom = dict(body.pop("custom_fields", {}) or {})
        for name, value in (raw.get("custom") or {}).items():
            if name not in by_name:
                raise AdminError(f"{entity}[{index}]: no custom field named {name!r}")
            custom[by_name[name]] = value
        if custom:
            body["custom_fields"] = custom
        try:
            at = parse_rfc3339(raw["update_time"]) if raw.get("update_time") else None
            record = company.create(entity, body, source="app", user_id=OWNER_ID, at=at)
        except ApiError as exc:
            raise AdminError(f"{entity}[{index}] is invalid: {exc.body.get('error')}") from exc
        except ValueError as exc:
            raise AdminError(f"{entity}[{index}]: {exc}") from exc
        return record.id

    def state(self, params: dict[str, str]) -> Any:
        """Stored data for assertions.

        ``?entity=persons`` (records, deleted ones flagged), ``?fields=persons``, ``?webhooks``,
        ``?deliveries``, ``?users``, ``?pipelines``; without any: counts and budget usage.
        """
        with self.lock:
            company = self.company
            if params.get("entity"):
                entity = params["entity"]
                if entity not in ENTITIES:
                    raise AdminError(f"unknown entity {entity!r}; known: {list(ENTITIES)}")
                return [company.render(entity, r) for r in company.records[entity].values()]
            if params.get("fields"):
                return [f.to_json() for f in company.fields.get(params["fields"], [])]
            wanted = [key for key in STATE_LISTS if key in params]
            if wanted:
                lists = {
                    "webhooks": lambda: [w.to_json() for w in self.webhooks.values()],
                    "deliveries": self.deliverer.snapshot,
                    "users": lambda: list(company.users.values()),
                    "pipelines": lambda: [
                        {"id": p["id"], "name": p["name"]} for p in company.pipelines.values()
                    ],
                }
                return {key: lists[key]() for key in wanted}
            return {
                "counts": {
                    entity: sum(1 for r in company.records[entity].values() if not r.deleted)
                    for entity in ENTITIES
                },
                "deleted": {
                    entity: sum(1 for r in company.records[entity].values() if r.deleted)
                    for entity in ENTITIES
                },
                "tokens_used": self.limits.tokens_used,
                "tokens_left": self.limits.tokens_left,
                "writes_today": self.limits.writes_today,
                "webhooks": len(self.webhooks),
            }

    def admin_router(self) -> APIRouter:
        """``throttle``, ``webhooks/flush``, ``ui_change`` and ``spend_tokens`` (see README)."""
        router = APIRouter()

        @router.post("/throttle")
        async def throttle(request: Request) -> dict[str, Any]:
            body = await _json(request)
            calls, retry_after = body.get("calls", 1), body.get("retry_after", 2)
            if not (
                isinstance(calls, int) and calls >= 0 and isinstance(retry_after, int) and retry_after >= 0
            ):
                raise AdminError("throttle takes {calls: int >= 0, retry_after: int seconds >= 0}")
            with self.lock:
                self.limits.forced_429, self.limits.forced_retry_after = calls, retry_after
            return {"forced_429": calls, "retry_after": retry_after}

        @router.post("/spend_tokens")
        async def spend_tokens(request: Request) -> dict[str, Any]:
            body = await _json(request)
            tokens = body.get("tokens")
            if not (isinstance(tokens, int) and tokens >= 0):
                raise AdminError("spend_tokens takes {tokens: int >= 0}")
            with self.lock:
                self.limits.tokens_used += tokens
                return {"tokens_used": self.limits.tokens_used, "tokens_left": self.limits.tokens_left}

        @router.post("/webhooks/flush")
        def flush() -> dict[str, Any]:
            return {"deliveries": self.deliverer.flush()}

        @router.post("/ui_change")
        async def ui_change(request: Request) -> dict[str, Any]:
            body = await _json(request)
            return self._ui_change(body)

        return router

    def _ui_change(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Write as a user of the web app would (``change_source: app``; webhooks fire)."""
        entity, action = body.get("entity"), body.get("action", "change")
        if entity not in ENTITIES:
            raise AdminError(f"ui_change: entity must be one of {list(ENTITIES)}")
        user_id = int(body.get("user_id") or OWNER_ID)
        with self.lock:
            company = self.company
            try:
                if action == "create":
                    record = company.create(entity, body.get("changes") or {}, source="app", user_id=user_id)
                elif action == "change":
                    record = company.update(
                        entity, int(body["id"]), body.get("changes") or {}, source="app", user_id=user_id
                    )
                elif action == "delete":
                    company.delete(entity, int(body["id"]), source="app", user_id=user_id)
                    return {"id": int(body["id"]), "deleted": True}
                else:
                    raise AdminError("ui_change: action must be create, change or delete")
            except ApiError as exc:
                raise AdminError(f"ui_change refused: {exc.body.get('error')}") from exc
            except (KeyError, TypeError, ValueError) as exc:
                raise AdminError(f"ui_change: {exc}") from exc
            return company.render(entity, record)

    def close(self) -> None:
        """Stop the webhook delivery thread."""
        self.deliverer.close()


async def _json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = await request.json()
    except ValueError as exc:
        raise AdminError(f"body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise AdminError("body must be a JSON object")
    return body


def _list(body: Mapping[str, Any], key: str) -> list[Any]:
    value = body.get(key, [])
    if not isinstance(value, list):
        raise AdminError(f"seed {key!r} must be a list")
    return value


def _copy(value: Any) -> Any:
    return copy.deepcopy(value)

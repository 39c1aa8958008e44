"""PipedriveHook: Pipedrive API v2 persons, organizations, deals and activities as typed results.

Every request goes through the shared HTTP policy (timeouts, retries honouring Retry-After, no
blind POST retry, redaction) with the API token in the ``x-api-token`` header: the
``?api_token=`` query parameter is legacy v1 only and would put the secret in URLs
(api-contracts.md 3.1). Entity CRUD, lists and search use v2 (v1 CRUD is deprecated); the
field lists, users and webhooks use v1, where they still live.

Limits (api-contracts.md 3.5): every answer carries ``x-ratelimit-*``; when the 2-second burst
window is spent the hook waits ``x-ratelimit-reset`` before the next call, and a 429 is
retried by the policy after ``Retry-After`` (even a POST: a throttled request was not
processed). A 429 whose wait runs past the policy's cap is the daily token budget:
:class:`QuotaExhausted` until midnight UTC, and every later call of this hook stops at once.
``x-daily-requests-left`` (POST/PUT calls left today) is fed to the quota budget.

No upsert, no idempotency key: a create whose answer is lost raises ``RetriableApiError``
(``READ_ERROR``) and the caller looks the record up (:meth:`PipedriveHook.find_by_field`)
before any new attempt, through the engine's outbox.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from crm_sync.exceptions import (
    AuthError,
    ConfigurationError,
    FatalApiError,
    QuotaExhausted,
    RecordRejected,
    RetriableApiError,
    SyncError,
)
from crm_sync.hooks.pipedrive_fields import FIELDS_ENDPOINTS, FieldDef, FieldMap
from crm_sync.hooks.pipedrive_types import (
    PipedriveRecord,
    PipedriveSettings,
    Pipeline,
    SearchHit,
    User,
    WebhookSubscription,
    webhook_from_json,
)
from crm_sync.hooks.policy_hook import PolicyHook
from crm_sync.http import HttpPolicy, PolicySession, RateLimitInfo, parse_rate_limit_headers
from crm_sync.redaction import safe_excerpt
from crm_sync.sync.quota import Budget

__all__ = [
    "ENTITIES",
    "PipedriveHook",
    "PipedriveRecord",
    "PipedriveSettings",
    "Pipeline",
    "SearchHit",
    "User",
    "WebhookSubscription",
]

log = logging.getLogger(__name__)

SYSTEM = "pipedrive"
ENTITIES = ("persons", "organizations", "deals", "activities")
SEARCHABLE = ("persons", "organizations")
PAGE_LIMIT = 500
_DEFAULT_POLICY = HttpPolicy(non_idempotent_retry_statuses=frozenset({429}))
# A PATCH names its record and sets absolute values: sending it twice gives the same record.
_IDEMPOTENT = (("PATCH", r"/api/v2/(persons|organizations|deals|activities)/\d+"),)


def _check_entity(entity: str, allowed: Sequence[str] = ENTITIES) -> str:
    if entity not in allowed:
        raise ValueError(f"pipedrive entity {entity!r} is not one of {list(allowed)}")
    return entity


def _timestamp(value: datetime) -> str:
    """RFC 3339 in UTC, as v2 filters require (a naive datetime is refused: it would be ambiguous)."""
    if value.tzinfo is None:
        raise ValueError("pipedrive timestamps must be timezone-aware")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- the hook -----------------------------------------------------------------------------------


class PipedriveHook(PolicyHook):
    """Interact with one Pipedrive company through API v2 (entities) and v1 (fields, users, webhooks).

    Args:
        pipedrive_conn_id: the connection (default ``pipedrive_default``).
        http_policy: timeouts and retries; by default a 429 is retried even for a POST.
        budget: charged one call before each request; fed ``x-daily-requests-left``.
        page_limit: items per list page (at most 500, the API's maximum).
    """

    conn_name_attr = "pipedrive_conn_id"
    system = SYSTEM
    settings_class = PipedriveSettings
    default_conn_name = "pipedrive_default"
    conn_type = "pipedrive"
    hook_name = "Pipedrive"

    def __init__(
        self,
        pipedrive_conn_id: str = default_conn_name,
        *,
        http_policy: HttpPolicy | None = None,
        budget: Budget | None = None,
        page_limit: int = PAGE_LIMIT,
    ) -> None:
        super().__init__()
        if not 1 <= page_limit <= PAGE_LIMIT:
            raise ValueError(f"page_limit must be 1 to {PAGE_LIMIT}")
        self.page_limit = page_limit
        self.pipedrive_conn_id = pipedrive_conn_id
        self.http_policy = http_policy or _DEFAULT_POLICY
        self.budget = budget
        self.rate_limit = RateLimitInfo()
        self.calls_by_entity: Counter[str] = Counter()
        self._session: PolicySession | None = None
        self._fields: dict[str, FieldMap] = {}
        self._users: list[User] | None = None
        self._exhausted: QuotaExhausted | None = None

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Relabel the connection form: the company URL in Host, the API token in Password."""
        return {
            "hidden_fields": ["login", "schema", "port"],
            "relabeling": {"host": "Company URL", "password": "API token"},
            "placeholders": {"host": "https://acme.pipedrive.com", "extra": '{"daily_write_limit": 10000}'},
        }

    def session_options(self, settings: PipedriveSettings) -> dict[str, Any]:
        """The token in the ``x-api-token`` header, never in a URL; rate-limit headers read."""
        return {
            "headers": {"x-api-token": settings.token, "Accept": "application/json"},
            "verify": settings.verify,
            "on_response": self._on_response,
            "idempotent_patterns": _IDEMPOTENT,
        }

    @property
    def api_calls(self) -> dict[str, Any]:
        """Requests sent: ``total``, per method, ``retries`` and ``by_entity`` (a retry counts once)."""
        session = self.get_conn()
        return {
            "total": session.calls,
            **dict(session.calls_by_method),
            "retries": session.retries,
            "by_entity": dict(self.calls_by_entity),
        }

    def test_connection(self) -> tuple[bool, str]:
        """Check the token with ``GET /v1/users/me`` (Airflow's "Test" button)."""
        try:
            me = self._call("GET", "/v1/users/me", tag="users")["data"]
        except SyncError as exc:
            return False, str(exc)
        return True, f"connected to Pipedrive company {me.get('company_domain')!r}"

    # ---- transport --------------------------------------------------------------------------

    def _on_response(self, response: requests.Response) -> None:
        """Keep the latest rate-limit headers; feed ``x-daily-requests-left`` to the budget."""
        info = parse_rate_limit_headers(response.headers)
        if info.limit is None and info.daily_left is None:
            return
        self.rate_limit = info
        if info.daily_left is not None and self.budget is not None:
            limit = self.settings.daily_write_limit
            try:
                self.budget.observe(max(limit - info.daily_left, 0), limit)
            except QuotaExhausted as exc:
                self._exhausted = exc  # this answer may carry a write's result: stop at the next call

    def _wait_for_window(self) -> None:
        """Wait out a spent 2-second window instead of provoking a 429 (``x-ratelimit-reset``)."""
        info = self.rate_limit
        if info.remaining == 0 and info.reset:
            wait = min(float(info.reset), self.http_policy.max_retry_after)
            log.info("pipedrive burst window spent; waiting %.0fs (x-ratelimit-reset)", wait)
            self.http_policy.sleep(wait)
            self.rate_limit = RateLimitInfo()

    def _call(
        self,
        method: str,
        path: str,
        *,
        tag: str,
        key: str | None = None,
        ok: frozenset[int] = frozenset(),
        **kwargs: Any,
    ) -> Any:
        """Send one request; return the decoded body (None for a status in ``ok``).

        Raises:
            QuotaExhausted: the daily token budget (or ours) is spent.
            AuthError: 401/403.
            RecordRejected: a 400/404/410 about record ``key`` (when given).
            RetriableApiError: 429 (burst) or 5xx after the policy's retries; a lost answer.
            FatalApiError: any other error.
        """
        if self._exhausted is not None:
            raise QuotaExhausted(str(self._exhausted), api=SYSTEM, resets_at=self._exhausted.resets_at)
        if self.budget is not None:
            self.budget.spend(1)
        self._wait_for_window()
        self.calls_by_entity[tag] += 1
        response = self.get_conn().request(method, path, **kwargs)
        if response.status_code in ok:
            return None
        if response.status_code >= 400:
            raise self._error(response, method, path, key)
        try:
            return response.json()
        except ValueError as exc:
            raise FatalApiError(
                f"pipedrive {method} {path}: HTTP {response.status_code} without JSON"
            ) from exc

    def _error(self, response: requests.Response, method: str, path: str, key: str | None) -> SyncError:
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = {}
        body = body if isinstance(body, Mapping) else {}
        message = safe_excerpt(str(body.get("error") or response.text or response.reason or ""), limit=300)
        code = str(body.get("code") or body.get("errorCode") or f"HTTP_{status}")
        where = f"pipedrive {method} {path} -> HTTP {status}: {message}"
        info = parse_rate_limit_headers(response.headers)
        if status == 429:
            wait = info.retry_after if info.retry_after is not None else info.reset
            if wait is not None and wait > self.http_policy.max_retry_after:
                # Too long to wait in-process: the daily token budget is spent until midnight UTC.
                resets_at = datetime.now(UTC) + timedelta(seconds=wait)
                self._exhausted = QuotaExhausted(where, api=SYSTEM, resets_at=resets_at)
                return self._exhausted
            return RetriableApiError(where, status=status, code=code, retry_after=wait)
        if status in {401, 403}:
            return AuthError(where, status=status, code=code)
        if status >= 500 or status == 408:
            return RetriableApiError(where, status=status, code=code, retry_after=info.retry_after)
        if key is not None and status in {400, 404, 410, 422}:
            reason = {404: "NOT_FOUND", 410: "DELETED"}.get(status, code)
            return RecordRejected(key, reason, message)
        return FatalApiError(where, status=status, code=code)

    # ---- fields and users -------------------------------------------------------------------

    def fields(self, entity: str) -> FieldMap:
        """The entity's fields from ``/v1/<entity>Fields`` (read once per hook, i.e. per run)."""
        _check_entity(entity)
        if entity not in self._fields:
            items: list[FieldDef] = []
            start: int | None = 0
            while start is not None:
                body = self._call(
                    "GET",
                    f"/v1/{FIELDS_ENDPOINTS[entity]}",
                    tag="fields",
                    params={"start": start, "limit": self.page_limit},
                )
                items += [FieldDef.from_json(raw) for raw in body.get("data") or []]
                pagination = (body.get("additional_data") or {}).get("pagination") or {}
                start = pagination.get("next_start") if pagination.get("more_items_in_collection") else None
            self._fields[entity] = FieldMap(entity, items)
        return self._fields[entity]

    def resolve_fields(self, entity: str, names: Sequence[str]) -> dict[str, str]:
        """``{name: key}`` for human field names (custom ones get their 40-hex hash key).

        Raises:
            ConfigurationError: naming every name the entity has no field for.
        """
        return {name: definition.key for name, definition in self.fields(entity).resolve(names).items()}

    def users(self) -> list[User]:
        """Every user of the company (read once)."""
        if self._users is None:
            body = self._call("GET", "/v1/users", tag="users")
            self._users = [
                User(id=int(u["id"]), name=str(u.get("name") or ""), active=bool(u.get("active_flag", True)))
                for u in body.get("data") or []
            ]
        return self._users

    def user_id(self, name: str) -> int | None:
        """The id of the one active user with this name (case-insensitive), else None."""
        wanted = name.strip().lower()
        found = [u.id for u in self.users() if u.active and u.name.strip().lower() == wanted]
        return found[0] if len(found) == 1 else None

    def pipelines(self) -> list[Pipeline]:
        """Every deal pipeline (``/api/v2/pipelines``)."""
        return [
            Pipeline(id=int(raw["id"]), name=str(raw.get("name") or ""))
            for raw in self._pages("/api/v2/pipelines", tag="pipelines", params={})
        ]

    def stage_names(self, pipeline_id: int | None = None) -> dict[int, str]:
        """``{stage id: name}`` (``/api/v2/stages``), of one pipeline or of all."""
        params = {} if pipeline_id is None else {"pipeline_id": int(pipeline_id)}
        return {
            int(raw["id"]): str(raw.get("name") or "")
            for raw in self._pages("/api/v2/stages", tag="stages", params=params)
        }

    def pipeline_ids(self, names: Sequence[str]) -> dict[str, int]:
        """``{name: id}`` of the configured pipelines.

        Raises:
            ConfigurationError: a name no pipeline has.
        """
        by_name = {p.name: p.id for p in self.pipelines()}
        missing = [name for name in names if name not in by_name]
        if missing:
            raise ConfigurationError(f"pipedrive: no pipeline named {', '.join(map(repr, missing))}")
        return {name: by_name[name] for name in names}

    # ---- lists ------------------------------------------------------------------------------

    def _pages(self, path: str, *, tag: str, params: dict[str, Any]) -> Iterator[Mapping[str, Any]]:
        """Every item of a v2 list, following ``next_cursor`` (a repeated cursor is a loop: fail)."""
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            page_params = {**params, "limit": self.page_limit, **({"cursor": cursor} if cursor else {})}
            body = self._call("GET", path, tag=tag, params=page_params)
            data = body.get("data") or []
            yield from (data.get("items") or []) if isinstance(data, Mapping) else data
            cursor = (body.get("additional_data") or {}).get("next_cursor")
            if not cursor:
                return
            if cursor in seen:
                raise FatalApiError(f"pipedrive GET {path}: the API returned the same cursor twice")
            seen.add(cursor)

    def iter_records(
        self,
        entity: str,
        *,
        updated_since: datetime | None = None,
        updated_until: datetime | None = None,
        ids: Sequence[int] | None = None,
        **filters: Any,
    ) -> Iterator[PipedriveRecord]:
        """Records changed in ``[updated_since, updated_until)``, oldest change first.

        Args:
            entity: ``persons``, ``organizations``, ``deals`` or ``activities``.
            updated_since: inclusive lower bound (aware datetime).
            updated_until: exclusive upper bound (aware datetime).
            ids: only these ids.
            **filters: other v2 filters (``owner_id``, ``org_id``, ``pipeline_id``, ``status``...).
        """
        _check_entity(entity)
        params: dict[str, Any] = {"sort_by": "update_time", "sort_direction": "asc", **filters}
        if updated_since is not None:
            params["updated_since"] = _timestamp(updated_since)
        if updated_until is not None:
            params["updated_until"] = _timestamp(updated_until)
        if ids:
            params["ids"] = ",".join(str(int(i)) for i in ids)
        for raw in self._pages(f"/api/v2/{entity}", tag=entity, params=params):
            yield PipedriveRecord.from_json(entity, raw)

    # ---- single records ---------------------------------------------------------------------

    def get(self, entity: str, record_id: int) -> PipedriveRecord | None:
        """The record, or None when it does not exist (404) or was deleted (410)."""
        body = self._call(
            "GET", f"/api/v2/{_check_entity(entity)}/{int(record_id)}", tag=entity, ok=frozenset({404, 410})
        )
        return None if body is None else PipedriveRecord.from_json(entity, body["data"])

    def create(self, entity: str, values: Mapping[str, Any], *, key: str | None = None) -> PipedriveRecord:
        """Create a record from a v2 body (see :meth:`FieldMap.write`); never resent once it may have arrived.

        Raises:
            RecordRejected: Pipedrive refused the body (400), when ``key`` names the record.
        """
        body = self._call("POST", f"/api/v2/{_check_entity(entity)}", tag=entity, key=key, json=dict(values))
        return PipedriveRecord.from_json(entity, body["data"])

    def update(
        self, entity: str, record_id: int, values: Mapping[str, Any], *, key: str | None = None
    ) -> PipedriveRecord:
        """PATCH the given values (others are left alone).

        Raises:
            RecordRejected: 400 (invalid), ``NOT_FOUND`` (404) or ``DELETED`` (410), when ``key`` is given.
        """
        path = f"/api/v2/{_check_entity(entity)}/{int(record_id)}"
        body = self._call("PATCH", path, tag=entity, key=key, json=dict(values))
        return PipedriveRecord.from_json(entity, body["data"])

    def delete(self, entity: str, record_id: int) -> bool:
        """Delete a record: True when deleted now, False when it was already gone (410 or 404)."""
        path = f"/api/v2/{_check_entity(entity)}/{int(record_id)}"
        return self._call("DELETE", path, tag=entity, ok=frozenset({404, 410})) is not None

    # ---- search -----------------------------------------------------------------------------

    def search(
        self,
        entity: str,
        term: str,
        *,
        fields: Sequence[str] | None = None,
        exact_match: bool = True,
        organization_id: int | None = None,
    ) -> list[SearchHit]:
        """``/api/v2/{persons|organizations}/search``, best score first (every page)."""
        _check_entity(entity, SEARCHABLE)
        params: dict[str, Any] = {"term": term, "exact_match": "true" if exact_match else "false"}
        if fields:
            params["fields"] = ",".join(fields)
        if organization_id is not None:
            params["organization_id"] = int(organization_id)
        return [
            SearchHit(
                id=int(hit["item"]["id"]), result_score=float(hit.get("result_score") or 0), item=hit["item"]
            )
            for hit in self._pages(f"/api/v2/{entity}/search", tag=f"{entity}/search", params=params)
        ]

    def find_by_field(self, entity: str, name: str, value: Any) -> list[PipedriveRecord]:
        """Live records whose field ``name`` equals ``value`` exactly (a matching-cascade step).

        Searches with ``exact_match`` (custom fields, ``name`` or ``email``), then reads each hit
        to keep only records where that very field holds the value: the search matches any
        custom field, and case-insensitively.
        """
        definition = self.fields(entity).resolve([name])[name]
        search_field = (
            "custom_fields"
            if definition.is_custom
            else {"email": "email", "phone": "phone"}.get(definition.key, "name")
        )
        wanted = str(value)
        matches: list[PipedriveRecord] = []
        for hit in self.search(entity, wanted, fields=[search_field]):
            record = self.get(entity, hit.id)
            if record is None:
                continue
            if definition.is_custom:
                found = record.custom_fields.get(definition.key)
                texts = [str(found.get("value") if isinstance(found, Mapping) else found)]
            elif definition.key in {"email", "phone"}:
                texts = [str(item.get("value")) for item in record.values.get(f"{definition.key}s") or []]
            else:
                texts = [str(record.values.get(definition.key))]
            if wanted in texts:
                matches.append(record)
        return matches

    # ---- webhooks ---------------------------------------------------------------------------

    def create_webhook(
        self,
        subscription_url: str,
        *,
        event_object: str,
        event_action: str = "*",
        http_auth_user: str | None = None,
        http_auth_password: str | None = None,
        name: str | None = None,
    ) -> WebhookSubscription:
        """Subscribe ``subscription_url`` to v2 webhooks (with basic auth, which the receiver checks)."""
        body: dict[str, Any] = {
            "subscription_url": subscription_url,
            "event_object": event_object,
            "event_action": event_action,
            "version": "2.0",
        }
        if http_auth_user is not None:
            body.update(http_auth_user=http_auth_user, http_auth_password=http_auth_password or "")
        if name:
            body["name"] = name
        return webhook_from_json(self._call("POST", "/v1/webhooks", tag="webhooks", json=body)["data"])

    def list_webhooks(self) -> list[WebhookSubscription]:
        """Every webhook of the company."""
        return [
            webhook_from_json(raw)
            for raw in self._call("GET", "/v1/webhooks", tag="webhooks").get("data") or []
        ]

    def delete_webhook(self, webhook_id: int) -> bool:
        """Remove a webhook: True when removed, False when it did not exist."""
        return (
            self._call("DELETE", f"/v1/webhooks/{int(webhook_id)}", tag="webhooks", ok=frozenset({404}))
            is not None
        )

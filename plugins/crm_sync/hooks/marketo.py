"""MarketoHook: Marketo leads, companies, opportunities, roles and activities as typed results.

Marketo answers nearly everything with HTTP 200 and reports failures in the envelope
(``success: false``, ``errors[].code``; api-contracts.md section 2). This hook reads that
envelope on every call: 601/602 fetch a new access token and replay the very same request once
(the original replayed the response instead of the payload); 606 (100 calls / 20 s), 615 (10
concurrent calls) and the transient 6xx/7xx codes back off and retry, then raise
:class:`RetriableApiError`; 607 raises :class:`QuotaExhausted` until 00:00 US Central. A 6xx
answer means the request was not executed, so replaying a write is safe.

The access token travels only in ``Authorization: Bearer`` (the ``access_token`` query parameter
is retired) and is never logged. Writes go in batches of at most 300 and return one
:class:`MarketoResult` per input record, whatever happened to its batch.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from airflow.sdk import BaseHook

from crm_sync.exceptions import (
    AuthError,
    FatalApiError,
    QuotaExhausted,
    RetriableApiError,
    SyncError,
)
from crm_sync.hooks.marketo_types import (
    AUTH_CODES,
    FAILED,
    MAX_BATCH,
    PARKED,
    QUOTA_CODE,
    QUOTA_ZONE,
    RETRY_CODES,
    SYSTEM,
    CustomActivity,
    LeadActivity,
    LeadSchema,
    MarketoResult,
    MarketoSettings,
    mask_message,
)
from crm_sync.http import HttpPolicy, PolicySession, build_session, raise_for_api_status
from crm_sync.sync.quota import QuotaBudget

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

__all__ = [
    "CHANGE_DATA_VALUE",
    "DELETE_LEAD",
    "NEW_LEAD",
    "CustomActivity",
    "LeadActivity",
    "LeadSchema",
    "MarketoHook",
    "MarketoResult",
    "next_quota_reset",
]

log = logging.getLogger(__name__)

ObjectKind = Literal["companies", "opportunities", "opportunities/roles"]
#: Standard activity type ids (``activities/types.json``).
NEW_LEAD, CHANGE_DATA_VALUE, DELETE_LEAD = 12, 13, 37
#: Longest query string sent as a GET; longer ones go as ``POST ?_method=GET`` (414 above 8 KB).
MAX_QUERY = 7000
RATE_WINDOW_S = 20.0
Body = Callable[[list[Mapping[str, Any]]], dict[str, Any]]
"""Builds a write's JSON body around one batch of ``input`` records."""


def _chunks(items: Sequence[Any], size: int = MAX_BATCH) -> Iterator[tuple[int, Sequence[Any]]]:
    for start in range(0, len(items), size):
        yield start, items[start : start + size]


class MarketoHook(BaseHook):
    """Interact with the Marketo REST API: leads, companies, opportunities, roles, activities.

    Args:
        marketo_conn_id: the connection (default ``marketo_default``): ``host`` = the instance
            base URL (``https://<munchkin-id>.mktorest.com``), ``login`` = client id,
            ``password`` = client secret; ``extra.daily_quota`` and ``extra.verify`` optional.
        budget: a quota budget charged one call before each REST request (optional; see
            :meth:`quota_budget`).
        http_policy: timeouts and transport retries; its ``sleep`` also waits out 606/615.
        throttle_retries: local retries of 606/615/transient codes before RetriableApiError.
        rate_window_s: Marketo's rate window; a 606 waits a quarter of it, doubling each time.
    """

    conn_name_attr = "marketo_conn_id"
    default_conn_name = "marketo_default"
    conn_type = "marketo"
    hook_name = "Marketo"

    def __init__(
        self,
        marketo_conn_id: str = default_conn_name,
        *,
        budget: QuotaBudget | None = None,
        http_policy: HttpPolicy | None = None,
        throttle_retries: int = 3,
        rate_window_s: float = RATE_WINDOW_S,
    ) -> None:
        super().__init__()
        self.marketo_conn_id = marketo_conn_id
        self.budget = budget
        self.http_policy = http_policy or HttpPolicy()
        self.throttle_retries = throttle_retries
        self.rate_window_s = rate_window_s
        self.calls: Counter[str] = Counter()
        self.exhausted: QuotaExhausted | None = None
        """Set once the daily quota ran out; later calls raise at once without sending."""
        self.last_page_token: str | None = None
        """A paging token at or before the first activity not yet yielded (a cursor to resume from)."""
        self._token: str | None = None
        self._token_expires = 0.0
        self._schema: LeadSchema | None = None

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Relabel the connection form: client id in Login, client secret in Password."""
        return {
            "hidden_fields": ["schema", "port"],
            "relabeling": {"host": "Instance URL", "login": "Client ID", "password": "Client secret"},
            "placeholders": {
                "host": "https://123-ABC-456.mktorest.com",
                "extra": '{"daily_quota": 50000}',
            },
        }

    # ---- connection, accounting -----------------------------------------------------------------

    @cached_property
    def settings(self) -> MarketoSettings:
        """The connection's settings (read once)."""
        return MarketoSettings.from_connection(self.get_connection(self.marketo_conn_id))

    @cached_property
    def http(self) -> PolicySession:
        """The policy session every request goes through."""
        return build_session(
            self.http_policy,
            system=SYSTEM,
            base_url=self.settings.base_url,
            headers={"Accept": "application/json"},
            verify=self.settings.verify,
        )

    def get_conn(self) -> PolicySession:
        """Return the policy session (authorisation is added per request)."""
        return self.http

    @property
    def api_calls(self) -> dict[str, int]:
        """Requests sent: ``total``, ``identity``, ``rest``, plus ``replayed`` (601/602) and ``throttled``."""
        return {"total": self.calls["identity"] + self.calls["rest"], **dict(self.calls)}

    def quota_budget(self, engine: Engine) -> QuotaBudget:
        """A shared budget for this instance: the daily quota and 100 calls / 20 s, reset at 00:00 Central."""
        return QuotaBudget(
            engine,
            SYSTEM,
            daily_limit=self.settings.daily_quota or 50_000,
            burst_limit=100,
            burst_window_s=self.rate_window_s,
            reset_tz=QUOTA_ZONE,
        )

    def test_connection(self) -> tuple[bool, str]:
        """Fetch a token and describe leads (Airflow's "Test" button)."""
        try:
            schema = self.describe_leads(refresh=True)
        except SyncError as exc:
            return False, str(exc)
        return True, f"connected to Marketo: {len(schema.fields)} lead fields"

    # ---- auth and transport ---------------------------------------------------------------------

    def access_token(self, *, refresh: bool = False) -> str:
        """The cached access token; a new one when asked, missing or past its ``expires_in``.

        Raises:
            AuthError: Identity refused the client id or secret.
        """
        if not refresh and self._token and time.monotonic() < self._token_expires:
            return self._token
        settings = self.settings
        before = self.http.retries
        try:
            # The secret goes in the form body, not the URL, so no proxy or access log keeps it.
            response = self.http.post(
                "identity/oauth/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": settings.client_id,
                    "client_secret": settings.client_secret,
                },
                idempotent=True,
            )
        finally:
            self.calls["identity"] += 1 + self.http.retries - before
        if response.status_code in (400, 401):
            raise AuthError(
                f"marketo identity refused the client credentials (HTTP {response.status_code}); "
                "check the connection's login (client id) and password (client secret)",
                status=response.status_code,
            )
        raise_for_api_status(response, system=SYSTEM)
        body = _json(response, "identity/oauth/token")
        token = body.get("access_token")
        if not token:
            raise AuthError("marketo identity answered without an access_token", status=response.status_code)
        self._token = str(token)
        self._token_expires = time.monotonic() + max(float(body.get("expires_in") or 0) - 1, 0)
        log.info("marketo: new access token, valid for %ss", body.get("expires_in"))
        return self._token

    def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        idempotent: bool = False,
    ) -> dict[str, Any]:
        """Send one REST request and return its successful envelope.

        Args:
            method: the HTTP method.
            path: relative to the instance, e.g. ``rest/v1/leads.json``.
            params: query parameters.
            json: a JSON body.
            data: a form body (``POST ...?_method=GET`` queries).
            idempotent: safe to resend after a lost response (the HTTP policy may then retry it).

        Raises:
            AuthError: 601/602 again after a fresh token, or 603.
            RetriableApiError: 606/615/transient codes after the local retries, or HTTP 5xx.
            QuotaExhausted: 607, or the budget is spent.
            FatalApiError: any other response-level error (the request itself is wrong).
        """
        where = f"{method} {path}"
        refreshed = False
        throttled = 0
        while True:
            self._spend()
            headers = {"Authorization": f"Bearer {self.access_token()}"}
            before = self.http.retries
            try:
                response = self.http.request(
                    method,
                    path,
                    params=params,
                    json=json,
                    data=data,
                    headers=headers,
                    idempotent=idempotent or None,
                )
            finally:
                self.calls["rest"] += 1 + self.http.retries - before
            raise_for_api_status(response, system=SYSTEM)
            body = _json(response, where)
            if body.get("success") is True:
                return body
            code, message = _first_error(body)
            text = f"marketo {where} -> {code}: {message}"
            if code in AUTH_CODES and not refreshed:
                # Same method, path, params and body: only the token changes (seed-notes 001 bug).
                log.info(
                    "marketo %s: access token %s; fetching a new one and replaying", where, message.lower()
                )
                refreshed = True
                self.calls["replayed"] += 1
                self.access_token(refresh=True)
                continue
            if code in RETRY_CODES and throttled < self.throttle_retries:
                throttled += 1
                self.calls["throttled"] += 1
                delay = self._throttle_delay(code, throttled)
                log.warning(
                    "marketo %s -> %s; retry %d/%d in %.1fs",
                    where,
                    code,
                    throttled,
                    self.throttle_retries,
                    delay,
                )
                self.http_policy.sleep(delay)
                continue
            raise self._error_for(code, text)

    def _spend(self) -> None:
        if self.exhausted is not None:
            raise QuotaExhausted(str(self.exhausted), api=SYSTEM, resets_at=self.exhausted.resets_at)
        if self.budget is not None:
            try:
                self.budget.spend(1)
            except QuotaExhausted as exc:
                self.exhausted = exc
                raise

    def _throttle_delay(self, code: str, attempt: int) -> float:
        if code == "606":
            # 606 counts the last 20 s: waiting a quarter window, then half, then all of it clears it.
            return min(self.rate_window_s, self.rate_window_s / 4 * 2 ** (attempt - 1))
        return self.http_policy.backoff(attempt)

    def _error_for(self, code: str, text: str) -> SyncError:
        if code in AUTH_CODES or code == "603":
            return AuthError(text, code=code)
        if code in RETRY_CODES:
            retry_after = self.rate_window_s if code == "606" else 1.0
            return RetriableApiError(text, code=code, retry_after=retry_after)
        if code == QUOTA_CODE:
            self.exhausted = QuotaExhausted(text, api=SYSTEM, resets_at=next_quota_reset())
            log.warning("marketo daily quota reached; parking the rest until %s", self.exhausted.resets_at)
            return self.exhausted
        return FatalApiError(text, code=code)

    def _query(self, path: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """A GET, sent as ``POST ?_method=GET`` with a form body when the URL would be too long."""
        if len(urlencode(params)) <= MAX_QUERY:
            return self.call("GET", path, params=params, idempotent=True)
        return self.call("POST", path, params={"_method": "GET"}, data=params, idempotent=True)

    # ---- lead schema ------------------------------------------------------------------------------

    def describe_leads(self, *, refresh: bool = False) -> LeadSchema:
        """The instance's lead fields and searchable fields (``describe2``; one call per hook)."""
        if self._schema is None or refresh:
            body = self.call("GET", "rest/v1/leads/describe2.json", idempotent=True)
            self._schema = LeadSchema.from_describe2(body.get("result") or [])
        return self._schema

    def check_lead_fields(
        self, names: Sequence[str], *, writable: bool = False, where: str = "lead fields"
    ) -> None:
        """Refuse field names the instance does not have (or cannot write).

        Raises:
            ConfigurationError: naming every offending field.
        """
        self.describe_leads().check(names, writable=writable, where=where)

    # ---- reads ------------------------------------------------------------------------------------

    def _filter(
        self, path: str, filter_type: str, values: Sequence[Any], fields: Sequence[str] | None
    ) -> Iterator[dict[str, Any]]:
        """Records whose ``filter_type`` is one of ``values``: 300 distinct values a call, every page."""
        unique = list(dict.fromkeys(str(v) for v in values if v not in (None, "")))
        for _, chunk in _chunks(unique):
            params: dict[str, Any] = {"filterType": filter_type, "filterValues": ",".join(chunk)}
            if fields:
                params["fields"] = ",".join(fields)
            yield from self._paged_filter(path, params)

    def _paged_filter(self, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        seen: set[str] = set()
        while True:
            body = self._query(path, params)
            yield from body.get("result") or []
            token = body.get("nextPageToken")
            if not token or not body.get("result"):
                return
            if token in seen:  # loop guard: a repeated token would page forever
                raise FatalApiError(
                    f"marketo {path} returned the same nextPageToken twice", code="BAD_RESPONSE"
                )
            seen.add(token)
            params = {**params, "nextPageToken": token}

    def get_leads(
        self, filter_type: str, values: Sequence[Any], fields: Sequence[str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Leads whose ``filter_type`` field is one of ``values`` (300 values a call, every page)."""
        yield from self._filter("rest/v1/leads.json", filter_type, values, fields)

    def get_lead(self, lead_id: int, fields: Sequence[str] | None = None) -> dict[str, Any] | None:
        """One lead by id, or None."""
        params = {"fields": ",".join(fields)} if fields else None
        result = self.call("GET", f"rest/v1/lead/{int(lead_id)}.json", params=params, idempotent=True)[
            "result"
        ]
        return result[0] if result else None

    def query_objects(
        self, kind: ObjectKind, filter_type: str, values: Sequence[Any], fields: Sequence[str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Companies, opportunities or roles by a searchable field (300 values a call)."""
        yield from self._filter(f"rest/v1/{kind}.json", filter_type, values, fields)

    def query_roles_by_key(
        self, keys: Sequence[Mapping[str, Any]], fields: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """Opportunity roles by their compound key ``{externalOpportunityId, leadId, role}``."""
        found: list[dict[str, Any]] = []
        for _, chunk in _chunks(keys):
            body: dict[str, Any] = {"filterType": "dedupeFields", "input": [dict(k) for k in chunk]}
            if fields:
                body["fields"] = list(fields)
            reply = self.call(
                "POST",
                "rest/v1/opportunities/roles.json",
                params={"_method": "GET"},
                json=body,
                idempotent=True,
            )
            found.extend(reply.get("result") or [])
        return found

    def activities(
        self,
        since: datetime,
        activity_type_ids: Sequence[int],
        *,
        until: datetime | None = None,
        lead_ids: Sequence[int] | None = None,
    ) -> Iterator[LeadActivity]:
        """Activities of the given types (at most 10) from ``since`` (before ``until``), oldest first."""
        if not 1 <= len(activity_type_ids) <= 10:
            raise ValueError("give 1 to 10 activity type ids")
        params: dict[str, Any] = {"activityTypeIds": ",".join(str(int(t)) for t in activity_type_ids)}
        if lead_ids:
            params["leadIds"] = ",".join(str(int(i)) for i in lead_ids)
        yield from self._activity_pages("rest/v1/activities.json", params, since, until)

    def lead_changes(
        self, since: datetime, fields: Sequence[str], *, until: datetime | None = None
    ) -> Iterator[LeadActivity]:
        """New Lead and Change Data Value activities touching ``fields``, from ``since``, oldest first."""
        if not fields:
            raise ValueError("lead_changes needs the fields to watch")
        params = {"fields": ",".join(fields)}
        yield from self._activity_pages("rest/v1/activities/leadchanges.json", params, since, until)

    def deleted_leads(self, since: datetime, *, until: datetime | None = None) -> Iterator[LeadActivity]:
        """Delete Lead activities from ``since``, oldest first."""
        yield from self._activity_pages("rest/v1/activities/deletedleads.json", {}, since, until)

    def paging_token(self, since: datetime) -> str:
        """A paging token for activities at or after ``since``."""
        stamp = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = self.call(
            "GET", "rest/v1/activities/pagingtoken.json", params={"sinceDatetime": stamp}, idempotent=True
        )
        return str(body["nextPageToken"])

    def _activity_pages(
        self, path: str, params: Mapping[str, Any], since: datetime, until: datetime | None
    ) -> Iterator[LeadActivity]:
        token = self.paging_token(since)
        while True:
            body = self.call("GET", path, params={**params, "nextPageToken": token}, idempotent=True)
            for raw in body.get("result") or []:
                activity = LeadActivity.from_json(raw)
                if until is not None and activity.date >= until:
                    self.last_page_token = token
                    return
                yield activity
            next_token = body.get("nextPageToken") or token
            self.last_page_token = next_token
            if not body.get("moreResult"):
                return
            if next_token == token and not body.get("result"):
                raise FatalApiError(f"marketo {path}: moreResult without progress", code="BAD_RESPONSE")
            token = next_token

    def usage_today(self) -> int:
        """API calls Marketo counted today (``stats/usage.json``)."""
        result = self.call("GET", "rest/v1/stats/usage.json", idempotent=True).get("result") or []
        return int(result[0].get("total") or 0) if result else 0

    # ---- writes -----------------------------------------------------------------------------------

    def _write(
        self,
        path: str,
        keys: Sequence[str],
        inputs: Sequence[Mapping[str, Any]],
        body: Body,
        *,
        idempotent: bool,
    ) -> list[MarketoResult]:
        """Send ``inputs`` in batches of 300; one result per input, in order, whatever happens.

        Once the quota runs out (607) or the API keeps refusing (606/615/5xx), the batch and
        every later one come back ``parked`` or ``failed`` without being sent.
        """
        if len(keys) != len(inputs):
            raise ValueError("one key per input record")
        out: list[MarketoResult] = []
        for start, chunk in _chunks(inputs):
            sent, stopped = self._send_batch(
                (path, body, idempotent), keys[start : start + len(chunk)], chunk
            )
            out.extend(sent)
            if stopped is not None:
                status, code = (PARKED, QUOTA_CODE) if isinstance(stopped, QuotaExhausted) else (FAILED, None)
                out.extend(
                    self._unsent(keys[len(out) :], status, code or stopped.code or "RETRIABLE", stopped)
                )
                break
        failed = sum(not r.success for r in out)
        log.info(
            "marketo POST %s: %d records, %d not applied; API calls %s",
            path,
            len(out),
            failed,
            self.api_calls,
        )
        return out

    def _send_batch(
        self, how: tuple[str, Body, bool], keys: Sequence[str], chunk: Sequence[Mapping[str, Any]]
    ) -> tuple[list[MarketoResult], QuotaExhausted | RetriableApiError | None]:
        """One call for ``chunk``; a body over Marketo's 1 MB (HTTP 413) is split in halves.

        ``how`` is ``(path, body builder, idempotent)``.
        """
        path, body, idempotent = how
        try:
            reply = self.call("POST", path, json=body(list(chunk)), idempotent=idempotent)
        except (QuotaExhausted, RetriableApiError) as exc:
            return [], exc
        except FatalApiError as exc:
            if exc.status != 413:
                raise
            if len(chunk) == 1:
                reason = "the record is over Marketo's 1 MB request limit"
                return [MarketoResult.unsent(keys[0], "skipped", "413", reason)], None
            half = len(chunk) // 2
            log.info("marketo POST %s: %d records are over 1 MB; sending them in halves", path, len(chunk))
            first, stopped = self._send_batch(how, keys[:half], chunk[:half])
            if stopped is not None:
                return first, stopped
            second, stopped = self._send_batch(how, keys[half:], chunk[half:])
            return first + second, stopped
        results = reply.get("result") or []
        if len(results) != len(chunk):
            raise FatalApiError(
                f"marketo {path}: {len(results)} results for {len(chunk)} records", code="BAD_RESPONSE"
            )
        return [MarketoResult.from_json(k, r) for k, r in zip(keys, results, strict=True)], None

    @staticmethod
    def _unsent(keys: Sequence[str], status: str, code: str, exc: SyncError) -> list[MarketoResult]:
        log.warning("marketo: %d records not sent (%s): %s", len(keys), status, exc)
        message = mask_message(str(exc))
        return [MarketoResult.unsent(key, status, code, message) for key in keys]

    def sync_leads(
        self,
        records: Sequence[Mapping[str, Any]],
        *,
        action: str = "createOrUpdate",
        lookup_field: str = "email",
        keys: Sequence[str] | None = None,
    ) -> list[MarketoResult]:
        """Create or update leads (``POST leads.json``), matched on ``lookup_field``.

        ``keys`` name the records in the results (default: their ``lookup_field`` value).
        createOrUpdate and updateOnly are upserts, so a call whose answer was lost may be resent.
        """
        keys = list(keys) if keys is not None else [str(r.get(lookup_field)) for r in records]
        return self._write(
            "rest/v1/leads.json",
            keys,
            records,
            lambda chunk: {"action": action, "lookupField": lookup_field, "input": chunk},
            idempotent=action in ("createOrUpdate", "updateOnly"),
        )

    def delete_leads(self, lead_ids: Sequence[int]) -> list[MarketoResult]:
        """Delete leads by id; a lead already gone comes back skipped with 1004."""
        ids = [int(i) for i in lead_ids]
        return self._write(
            "rest/v1/leads/delete.json",
            [str(i) for i in ids],
            [{"id": i} for i in ids],
            lambda chunk: {"input": chunk},
            idempotent=True,
        )

    def sync_objects(
        self,
        kind: ObjectKind,
        records: Sequence[Mapping[str, Any]],
        *,
        action: str = "createOrUpdate",
        dedupe_by: str = "dedupeFields",
        keys: Sequence[str] | None = None,
    ) -> list[MarketoResult]:
        """Upsert companies, opportunities or opportunity roles by their dedupe fields.

        ``keys`` default to the dedupe values joined by ``|`` (companies ``externalCompanyId``,
        opportunities ``externalOpportunityId``, roles ``externalOpportunityId|leadId|role``).
        """
        dedupe = {
            "companies": ("externalCompanyId",),
            "opportunities": ("externalOpportunityId",),
            "opportunities/roles": ("externalOpportunityId", "leadId", "role"),
        }[kind]
        if keys is None:
            keys = ["|".join(str(r.get(f)) for f in dedupe) for r in records]
        return self._write(
            f"rest/v1/{kind}.json",
            list(keys),
            records,
            lambda chunk: {"action": action, "dedupeBy": dedupe_by, "input": chunk},
            idempotent=action in ("createOrUpdate", "updateOnly"),
        )

    def sync_companies(self, records: Sequence[Mapping[str, Any]], **kwargs: Any) -> list[MarketoResult]:
        """Upsert companies by ``externalCompanyId`` (see :meth:`sync_objects`)."""
        return self.sync_objects("companies", records, **kwargs)

    def sync_opportunities(self, records: Sequence[Mapping[str, Any]], **kwargs: Any) -> list[MarketoResult]:
        """Upsert opportunities by ``externalOpportunityId`` (see :meth:`sync_objects`)."""
        return self.sync_objects("opportunities", records, **kwargs)

    def sync_opportunity_roles(
        self, records: Sequence[Mapping[str, Any]], **kwargs: Any
    ) -> list[MarketoResult]:
        """Upsert roles by ``(externalOpportunityId, leadId, role)`` (see :meth:`sync_objects`)."""
        return self.sync_objects("opportunities/roles", records, **kwargs)

    def delete_objects(
        self,
        kind: ObjectKind,
        records: Sequence[Mapping[str, Any]],
        *,
        delete_by: str = "dedupeFields",
        keys: Sequence[str] | None = None,
    ) -> list[MarketoResult]:
        """Delete companies, opportunities or roles by dedupe fields (or ``idField``)."""
        keys = list(keys) if keys is not None else ["|".join(str(v) for v in r.values()) for r in records]
        return self._write(
            f"rest/v1/{kind}/delete.json",
            keys,
            records,
            lambda chunk: {"deleteBy": delete_by, "input": chunk},
            idempotent=True,
        )

    def add_custom_activities(self, activities: Sequence[CustomActivity]) -> list[MarketoResult]:
        """Add custom activities (not idempotent: dedupe through the outbox before calling)."""
        return self._write(
            "rest/v1/activities/external.json",
            [a.key for a in activities],
            [a.payload() for a in activities],
            lambda chunk: {"input": chunk},
            idempotent=False,
        )


def next_quota_reset(now: datetime | None = None) -> datetime:
    """The next 00:00 US Central, when Marketo's daily quota resets (in UTC)."""
    zone = ZoneInfo(QUOTA_ZONE)
    local = (now or datetime.now(UTC)).astimezone(zone)
    midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), tzinfo=zone)
    return midnight.astimezone(UTC)


def _json(response: Any, where: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise FatalApiError(
            f"marketo {where}: HTTP {response.status_code} without a JSON object", code="BAD_RESPONSE"
        )
    return body


def _first_error(body: Mapping[str, Any]) -> tuple[str, str]:
    errors = body.get("errors") or []
    first = errors[0] if errors and isinstance(errors[0], Mapping) else {}
    return str(first.get("code") or "UNKNOWN"), mask_message(str(first.get("message") or "no message"))

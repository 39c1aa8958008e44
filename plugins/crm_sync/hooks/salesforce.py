"""SalesforceSyncHook: write and read Salesforce records with typed, per-record results.

Writes go through sObject Collections (200 records a call) below ``bulk_threshold`` records
and through Bulk API 2.0 at or above it; either way every input record gets exactly one
:class:`RecordResult`. Requests, auth, quota and call counting live in
:class:`~crm_sync.hooks.salesforce_client.SalesforceClient`.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import cached_property
from typing import Any

from airflow.providers.salesforce.hooks.salesforce import SalesforceHook
from simple_salesforce import Salesforce

from crm_sync.exceptions import AuthError, FatalApiError, QuotaExhausted, RetriableApiError
from crm_sync.hooks import soql
from crm_sync.hooks.salesforce_auth import SalesforceSettings
from crm_sync.hooks.salesforce_bulk import Bulk2, PollPolicy
from crm_sync.hooks.salesforce_client import SalesforceClient
from crm_sync.hooks.salesforce_collections import (
    COLLECTION_SIZE,
    Operation,
    collection_request,
    collection_results,
)
from crm_sync.hooks.salesforce_query import RowShaper, parse_query
from crm_sync.hooks.salesforce_records import outcome_for, prepare_rows, stopped_results, unsent_code
from crm_sync.hooks.salesforce_types import (
    RETRY_CODES,
    ApiLimit,
    RecordResult,
    SObjectDescription,
)
from crm_sync.http import HttpPolicy, PolicySession
from crm_sync.sync.progress import Progress
from crm_sync.sync.quota import Budget
from crm_sync.sync.records import Action, Change, Outcome

__all__ = ["Budget", "RecordResult", "SalesforceSyncHook"]

log = logging.getLogger(__name__)

Rows = list[tuple[str, dict[str, Any]]]


class SalesforceSyncHook(SalesforceHook):
    """Salesforce domain verbs for crm_sync: upsert, insert, update, delete, push_changes, query.

    Args:
        salesforce_conn_id: the ``salesforce`` connection (default ``salesforce_default``).
        budget: a quota budget charged one call before each request (optional).
        bulk_threshold: records at which writes use Bulk API 2.0 (default: the connection's
            ``bulk_threshold`` extra, else 2,000).
        query_bulk_threshold: rows at which ``query(bulk=None)`` switches to a Bulk query.
        max_row_retries: resubmissions of UNABLE_TO_LOCK_ROW and unprocessed rows.
        row_retry_backoff: seconds before the first resubmission (doubled each time).
        poll: how Bulk jobs are polled (first wait, growth, cap, bound on the total wait).
        http_policy: timeouts and retries of every request.
    """

    hook_name = "Salesforce (crm_sync)"

    def __init__(
        self,
        salesforce_conn_id: str = SalesforceHook.default_conn_name,
        *,
        budget: Budget | None = None,
        bulk_threshold: int | None = None,
        query_bulk_threshold: int = 10_000,
        max_row_retries: int = 3,
        row_retry_backoff: float = 1.0,
        poll: PollPolicy | None = None,
        http_policy: HttpPolicy | None = None,
    ) -> None:
        super().__init__(salesforce_conn_id=salesforce_conn_id)
        self.budget = budget
        self._bulk_threshold = bulk_threshold
        self.query_bulk_threshold = query_bulk_threshold
        self.max_row_retries = max_row_retries
        self.row_retry_backoff = row_retry_backoff
        self.poll = poll or PollPolicy()
        self.http_policy = http_policy or HttpPolicy()
        self._describes: dict[str, SObjectDescription] = {}

    # ---- connection and accounting --------------------------------------------------------

    @cached_property
    def settings(self) -> SalesforceSettings:
        """The connection's settings (read once)."""
        connection = self.get_connection(self.conn_id)
        return SalesforceSettings.from_connection(
            connection.login, connection.password, connection.extra_dejson
        )

    @cached_property
    def client(self) -> SalesforceClient:
        """Authenticated, counted, budgeted requests to the org."""
        return SalesforceClient(
            self.settings,
            budget=self.budget,
            http_policy=self.http_policy,
            provider_login=self._provider_login,
        )

    def _provider_login(self, session: PolicySession) -> Salesforce:
        """Log in the provider's way (password/SOAP, JWT, ...) over our policy session."""
        self.session = session
        return SalesforceHook.conn.func(self)  # type: ignore[attr-defined]

    @property  # type: ignore[override]
    def conn(self) -> Salesforce:
        """The logged-in simple-salesforce client (the provider's methods use it too)."""
        return self.client.sf

    def get_conn(self) -> Salesforce:
        """Return the logged-in simple-salesforce client (sharing this hook's session)."""
        return self.client.sf

    @property
    def http(self) -> PolicySession:
        """The policy session all requests go through."""
        return self.client.http

    @property
    def bulk_threshold(self) -> int:
        """Records at which writes switch from Collections to Bulk API 2.0."""
        return self._bulk_threshold or self.settings.bulk_threshold

    @property
    def api_daily_limit(self) -> int | None:
        """The connection's own daily cap (``api_daily_limit`` extra), for building a shared budget."""
        return self.settings.api_daily_limit

    @property
    def api_calls(self) -> dict[str, int]:
        """Requests sent so far, retries included: total, auth, rest, collections, bulk."""
        return self.client.calls.as_dict()

    @property
    def budget_left(self) -> int | None:
        """API calls left today (budget, else Salesforce's usage header, capped by api_daily_limit)."""
        return self.client.budget_left

    @cached_property
    def bulk(self) -> Bulk2:
        """The Bulk API 2.0 client, sharing this hook's requests, budget and counters."""
        return Bulk2(self.client.call, self.poll)

    # ---- reads --------------------------------------------------------------------------------

    def describe(self, sobject: str) -> SObjectDescription:
        """The fields of ``sobject`` (one call per object per hook)."""
        key = soql.identifier(sobject).lower()
        if key not in self._describes:
            body = self.client.call("rest", "GET", f"sobjects/{sobject}/describe/").json()
            self._describes[key] = SObjectDescription.from_json(body)
        return self._describes[key]

    def limits(self) -> dict[str, ApiLimit]:
        """The org's limits (``GET /limits``), e.g. ``limits()["DailyApiRequests"].remaining``."""
        body = self.client.call("rest", "GET", "limits/").json()
        return {
            name: ApiLimit(max=int(v["Max"]), remaining=int(v["Remaining"]))
            for name, v in body.items()
            if isinstance(v, Mapping) and "Max" in v and "Remaining" in v
        }

    def query(
        self, soql_text: str, *, bulk: bool | None = None, include_deleted: bool = False
    ) -> Iterator[dict[str, Any]]:
        """Stream a SOQL query's records as flat, typed dicts, the same from REST and Bulk.

        Keys are the SELECT-list columns as written (parents dotted: ``Account.Name``);
        values are typed from describe (see crm_sync.hooks.salesforce_query). ``bulk=None``
        starts with REST and switches to a Bulk 2.0 query job when the first page's
        ``totalSize`` (Salesforce's own count: no extra COUNT() call) reaches
        ``query_bulk_threshold``; ``True``/``False`` force one API.
        """
        parsed = parse_query(soql_text)
        if bulk and not parsed.bulk_ok:
            raise ValueError("this query uses features Bulk API 2.0 queries do not support")
        shaper = RowShaper.build(parsed, self.describe)
        if bulk:
            yield from map(shaper.from_csv, self.bulk.query(soql_text, include_deleted=include_deleted))
            return
        endpoint = "queryAll/" if include_deleted else "query/"
        body = self.client.call("rest", "GET", endpoint, params={"q": soql_text}).json()
        total = int(body.get("totalSize", 0))
        if (
            bulk is None
            and parsed.bulk_ok
            and not body.get("done", True)
            and total >= self.query_bulk_threshold
        ):
            log.info("salesforce query of %d rows: switching to a Bulk API 2.0 query job", total)
            yield from map(shaper.from_csv, self.bulk.query(soql_text, include_deleted=include_deleted))
            return
        seen: set[str] = set()
        while True:
            yield from map(shaper.from_rest, body.get("records", []))
            next_url = body.get("nextRecordsUrl")
            if body.get("done", True) or not next_url:
                return
            if next_url in seen:  # loop guard: a repeated cursor would page forever
                raise FatalApiError(f"salesforce query returned {next_url} twice", code="BAD_RESPONSE")
            seen.add(next_url)
            body = self.client.call("rest", "GET", next_url).json()

    # ---- writes -------------------------------------------------------------------------------

    def upsert(
        self, sobject: str, external_id_field: str, records: Sequence[Mapping[str, Any]]
    ) -> list[RecordResult]:
        """Insert or update ``records`` matched on ``external_id_field``; one result per record.

        Safe to resend: a repeated upsert updates what the first attempt created, so calls
        whose response was lost are retried by the HTTP policy.
        """
        soql.identifier(external_id_field)
        return self._write(
            "upsert",
            sobject,
            records,
            external_id_field,
            key_field=external_id_field,
            duplicate_code="DUPLICATE_EXTERNAL_ID",
        )

    def insert(
        self, sobject: str, records: Sequence[Mapping[str, Any]], *, key_field: str
    ) -> list[RecordResult]:
        """Create ``records``; ``key_field`` (a field sent with them) names each in the results.

        Not idempotent: a call whose response was lost is never resent; its records come back
        OUTCOME_UNKNOWN. Integrations use :meth:`upsert` or the outbox instead.
        """
        soql.identifier(key_field)
        return self._write(
            "insert", sobject, records, None, key_field=key_field, duplicate_code="DUPLICATE_KEY_IN_BATCH"
        )

    def update(self, sobject: str, records: Sequence[Mapping[str, Any]]) -> list[RecordResult]:
        """Update ``records`` by their ``Id``; one result per record, keyed by Id."""
        return self._write(
            "update", sobject, records, None, key_field="Id", duplicate_code="DUPLICATE_KEY_IN_BATCH"
        )

    def delete(self, sobject: str, ids: Sequence[str]) -> list[RecordResult]:
        """Delete records by Id (to the recycle bin); an already deleted record counts as done."""
        records = [{"Id": record_id} for record_id in ids]
        return self._write(
            "delete", sobject, records, None, key_field="Id", duplicate_code="DUPLICATE_KEY_IN_BATCH"
        )

    def _field_check(self, sobject: str) -> Callable[[str, Any], bool] | None:
        """A check that a payload key is a field of ``sobject`` (or a parent reference by external id).

        Salesforce refuses a whole call (Collections) or job (Bulk) over one unknown field;
        checking against describe first lets the other records through. Skipped when the
        quota is spent (nothing is sent then anyway).
        """
        if self.client.exhausted:
            return None
        try:
            description = self.describe(sobject)
        except QuotaExhausted:
            return None
        return lambda name, value: (
            description.field(name) is not None
            or (isinstance(value, Mapping) and description.relationship(name) is not None)
        )

    def _write(
        self,
        operation: Operation,
        sobject: str,
        records: Sequence[Mapping[str, Any]],
        external_id_field: str | None,
        *,
        key_field: str,
        duplicate_code: str,
    ) -> list[RecordResult]:
        """Validate, send, resubmit locked and unprocessed rows, return one result per input."""
        soql.identifier(sobject)
        keys, early, rows = prepare_rows(
            records,
            key_field=key_field,
            key_of=lambda r: r.get(key_field),
            duplicate_code=duplicate_code,
            ids=key_field == "Id",
            field_ok=self._field_check(sobject) if operation != "delete" and records else None,
        )
        results: dict[str, RecordResult] = {}
        pending = rows
        for attempt in range(self.max_row_retries + 1):
            if not pending:
                break
            batch = self._send(operation, sobject, pending, external_id_field, key_field)
            results.update(batch)
            retry = [(k, r) for k, r in pending if batch[k].error_code in RETRY_CODES]
            if not retry or attempt == self.max_row_retries:
                break
            # Lock contention clears when the competing transaction ends; back off, then
            # resend only those rows (apache/airflow PR #64575 does the same for Bulk 1.0).
            delay = self.row_retry_backoff * 2**attempt * (1 + 0.25 * random.random())  # noqa: S311
            log.info(
                "salesforce %s %s: resubmitting %d locked/unprocessed records in %.1fs (retry %d/%d)",
                operation,
                sobject,
                len(retry),
                delay,
                attempt + 1,
                self.max_row_retries,
            )
            time.sleep(delay)
            pending = retry
        out = [early.get(i) or results[keys[i]] for i in range(len(records))]
        failed = sum(not r.success for r in out)
        log.info(
            "salesforce %s %s: %d records, %d succeeded, %d not; API calls %s, budget left %s",
            operation,
            sobject,
            len(out),
            len(out) - failed,
            failed,
            self.api_calls,
            self.budget_left,
        )
        return out

    def _send(
        self, operation: Operation, sobject: str, rows: Rows, external_id_field: str | None, key_field: str
    ) -> dict[str, RecordResult]:
        """Send ``rows`` once, through the API their number calls for."""
        if self.client.exhausted:
            code = self.client.exhausted
            return {k: RecordResult.failure(k, code, "not sent: API quota exhausted") for k, _ in rows}
        if len(rows) >= self.bulk_threshold:
            log.info("salesforce %s %s: %d records through Bulk API 2.0", operation, sobject, len(rows))
            return self.bulk.ingest(
                sobject, operation, rows, key_column=key_field, external_id_field=external_id_field
            )
        return self._collections(operation, sobject, rows, external_id_field)

    def _collections(
        self, operation: Operation, sobject: str, rows: Rows, external_id_field: str | None
    ) -> dict[str, RecordResult]:
        """Send ``rows`` through sObject Collections, 200 a call, in order."""
        out: dict[str, RecordResult] = {}
        label = f"salesforce {operation} {sobject}"
        with Progress(
            len(rows), label, logger=log, extra=lambda: f"API budget left {self.budget_left}"
        ) as progress:
            for start in range(0, len(rows), COLLECTION_SIZE):
                chunk = rows[start : start + COLLECTION_SIZE]
                try:
                    results = self._one_collection(operation, sobject, chunk, external_id_field)
                except (QuotaExhausted, RetriableApiError) as exc:
                    later = [key for key, _ in rows[start + COLLECTION_SIZE :]]
                    out.update(stopped_results(operation, [key for key, _ in chunk], later, exc))
                    log.warning("%s: stopped after %d of %d records: %s", label, start, len(rows), exc)
                    break
                out.update((result.key, result) for result in results)
                progress.advance(len(chunk))
        return out

    def _one_collection(
        self, operation: Operation, sobject: str, chunk: Rows, external_id_field: str | None
    ) -> list[RecordResult]:
        """One Collections call; a call refused for its content fails each of its records."""
        keys = [key for key, _ in chunk]
        spec = collection_request(operation, sobject, chunk, external_id_field)
        try:
            response = self.client.call(
                "collections",
                spec.method,
                spec.path,
                idempotent=spec.idempotent,
                json=spec.json,
                params=spec.params,
            )
        except FatalApiError as exc:
            if exc.status != 400 or isinstance(exc, AuthError):
                raise
            return [RecordResult.failure(key, exc.code or "INVALID_REQUEST", str(exc)) for key in keys]
        return collection_results(operation, keys, response.json())

    # ---- the generic push -----------------------------------------------------------------

    def push_changes(self, sobject: str, external_id_field: str, changes: Sequence[Change]) -> list[Outcome]:
        """Apply diff changes: create/update -> upsert by external id, delete -> delete by Id.

        Returns one Outcome per change, in order: success, rejected (the record's own
        error), failed (transient: retried next run) or parked (the quota ran out before it
        was sent). A delete without a target id is looked up by its external id first; one
        Salesforce no longer has counts as done.
        """
        outcomes: dict[int, Outcome] = {}
        writes = [(i, c) for i, c in enumerate(changes) if c.action in (Action.CREATE, Action.UPDATE)]
        deletes = [(i, c) for i, c in enumerate(changes) if c.action == Action.DELETE]
        for i, change in enumerate(changes):
            if change.action not in (Action.CREATE, Action.UPDATE, Action.DELETE):
                outcomes[i] = Outcome.skipped(change, message=f"nothing to push for {change.action}")
        if writes:
            records = [{**(c.payload or {}), external_id_field: c.key} for _, c in writes]
            results = self.upsert(sobject, external_id_field, records)
            for (i, change), result in zip(writes, results, strict=True):
                outcomes[i] = outcome_for(change, result)
        if deletes:
            try:
                target_ids = self._target_ids(sobject, external_id_field, [c for _, c in deletes])
            except QuotaExhausted as exc:
                # Reads cannot be parked half-way: deletes still needing a lookup wait for the next run.
                code, why = unsent_code(exc)
                target_ids = {c.key: c.target_id for _, c in deletes if c.target_id}
                for i, change in deletes:
                    if not change.target_id:
                        outcomes[i] = Outcome.parked(change, code, f"not looked up: {why}")
            found = [(i, c) for i, c in deletes if target_ids.get(c.key)]
            for i, change in deletes:
                if not target_ids.get(change.key) and i not in outcomes:
                    outcomes[i] = Outcome.ok(change)
            results = self.delete(sobject, [target_ids[c.key] for _, c in found]) if found else []
            for (i, change), result in zip(found, results, strict=True):
                outcomes[i] = outcome_for(change, result)
        return [outcomes[i] for i in range(len(changes))]

    def _target_ids(self, sobject: str, external_id_field: str, changes: Sequence[Change]) -> dict[str, str]:
        """Salesforce Ids of delete changes, looked up by external id where a change has none."""
        found = {c.key: c.target_id for c in changes if c.target_id}
        missing = [c.key for c in changes if not c.target_id]
        for start in range(0, len(missing), 100):  # 100 quoted keys keep the URL far below 16 KB
            query = soql.select(
                sobject, ["Id", external_id_field], where={external_id_field: missing[start : start + 100]}
            )
            for row in self.query(query, bulk=False):
                found[str(row[external_id_field])] = row["Id"]
        return found

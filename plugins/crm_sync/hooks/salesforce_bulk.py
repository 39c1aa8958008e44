"""Bulk API 2.0 ingest and query jobs: CSV in, results mapped back to inputs by key.

Salesforce does not keep result rows in input order ("Get Job Successful Record Results",
Bulk API 2.0 guide), so every result row is matched to its input through the key column
(external id, ``Id`` or the insert key), never by position.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import requests

from crm_sync.exceptions import FatalApiError, QuotaExhausted, RetriableApiError
from crm_sync.hooks.salesforce_records import unsent_code
from crm_sync.hooks.salesforce_types import (
    OUTCOME_UNKNOWN,
    UNPROCESSED,
    RecordResult,
    parse_sf_error,
    to_wire,
)
from crm_sync.http import READ_ERROR

__all__ = ["MAX_UPLOAD_BYTES", "Bulk2", "PollPolicy", "build_csv_batches", "csv_value", "read_csv"]

log = logging.getLogger(__name__)

# simple-salesforce keeps each upload under 100 MB raw; the documented cap is 150 MB base64
# per job (Bulk API 2.0 limits), which 100 MB of CSV stays safely below.
MAX_UPLOAD_BYTES = 100 * 1024 * 1024
# Bulk API 2.0 clears a field only for the literal #N/A; an empty cell leaves it unchanged
# (Data Loader guide, "Bulk API ... empty field values are ignored").
NULL_MARKER = "#N/A"
TERMINAL_STATES = frozenset({"JobComplete", "Failed", "Aborted"})


class Caller(Protocol):
    """The hook's request function: spends budget, counts, re-authenticates, raises typed errors."""

    def __call__(
        self,
        kind: str,
        method: str,
        path: str,
        *,
        committed: bool = False,
        idempotent: bool = False,
        **kwargs: Any,
    ) -> requests.Response:
        """Send one request to ``<base_url>/<path>``."""


@dataclass(frozen=True, slots=True)
class PollPolicy:
    """How to wait for a Bulk job: first wait, growth factor, cap, and the bound on total wait."""

    first: float = 1.0
    factor: float = 2.0
    cap: float = 30.0
    max_wait: float = 1800.0


def csv_value(value: Any) -> str:
    """One CSV cell: ``None``/``""`` -> ``#N/A`` (clear the field), booleans lower-case."""
    wire = to_wire(value)
    if wire is None:
        return NULL_MARKER
    if isinstance(wire, bool):
        return "true" if wire else "false"
    return str(wire)


def _flat(row: Mapping[str, Any]) -> dict[str, Any]:
    """A parent referenced by external id becomes a ``Relationship.ExtField`` column (Bulk 2.0 CSV)."""
    out: dict[str, Any] = {}
    for name, value in row.items():
        if isinstance(value, Mapping):
            out.update({f"{name}.{inner}": v for inner, v in value.items()})
        else:
            out[name] = value
    return out


def _columns(rows: Sequence[tuple[str, Mapping[str, Any]]], key_column: str) -> list[str]:
    """The key column first, then every other field in first-seen order."""
    seen = {key_column: None}
    for _, row in rows:
        for name in row:
            seen.setdefault(name, None)
    return list(seen)


def build_csv_batches(
    rows: Sequence[tuple[str, Mapping[str, Any]]], key_column: str, max_bytes: int = MAX_UPLOAD_BYTES
) -> Iterator[tuple[bytes, list[str]]]:
    """Yield ``(csv_bytes, keys)`` uploads of at most ``max_bytes`` each (header included).

    A field absent from a record becomes an empty cell, which Bulk API 2.0 leaves unchanged;
    a field set to None becomes ``#N/A``, which clears it. The key column always holds the key.
    """
    rows = [(key, _flat(row)) for key, row in rows]
    columns = _columns(rows, key_column)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    header = buffer.getvalue().encode()
    chunks: list[bytes] = []
    keys: list[str] = []
    size = len(header)
    for key, row in rows:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(
            [key if name == key_column else (csv_value(row[name]) if name in row else "") for name in columns]
        )
        line = buffer.getvalue().encode()
        if len(header) + len(line) > max_bytes:
            raise ValueError(f"record {key!r} alone exceeds the {max_bytes}-byte upload limit")
        if chunks and size + len(line) > max_bytes:
            yield header + b"".join(chunks), keys
            chunks, keys, size = [], [], len(header)
        chunks.append(line)
        keys.append(key)
        size += len(line)
    if chunks:
        yield header + b"".join(chunks), keys


def read_csv(content: bytes) -> list[dict[str, str]]:
    """Parse a Bulk result CSV (an empty body or a bare header mean no rows)."""
    text = content.decode("utf-8-sig")
    if not text.strip():
        return []
    return list(csv.DictReader(io.StringIO(text, newline="")))


@dataclass
class _Job:
    """One ingest job we created: its id, the keys uploaded to it, its last known info."""

    id: str
    keys: list[str]
    info: dict[str, Any] = field(default_factory=dict)
    timed_out: bool = False


class Bulk2:
    """Bulk API 2.0 jobs through the hook's request function."""

    def __init__(
        self,
        call: Caller,
        poll: PollPolicy,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        max_upload_bytes: int = MAX_UPLOAD_BYTES,
    ) -> None:
        self._call = call
        self._poll = poll
        self._sleep = sleep
        self._clock = clock
        self._max_upload_bytes = max_upload_bytes

    # ---- ingest -------------------------------------------------------------------------

    def ingest(
        self,
        sobject: str,
        operation: str,
        rows: Sequence[tuple[str, Mapping[str, Any]]],
        *,
        key_column: str,
        external_id_field: str | None = None,
    ) -> dict[str, RecordResult]:
        """Run ``operation`` over ``rows`` (``(key, record)`` pairs); return a result per key.

        Uploads over the size limit are split into several jobs, all started before any is
        polled. Rows a job never reported on come back UNPROCESSED (retried by the caller),
        or OUTCOME_UNKNOWN for inserts, which are not safe to resend.
        """
        results: dict[str, RecordResult] = {}
        jobs: list[_Job] = []
        batches = list(build_csv_batches(rows, key_column, self._max_upload_bytes))
        for index, (payload, keys) in enumerate(batches):
            try:
                jobs.append(self._start_ingest(sobject, operation, external_id_field, payload, keys))
            except (QuotaExhausted, RetriableApiError) as exc:
                # A job that was created but not closed is never processed, so this batch
                # and the later ones were not sent.
                code, why = unsent_code(exc)
                for _, later_keys in batches[index:]:
                    for key in later_keys:
                        results[key] = RecordResult.failure(key, code, f"not sent: {why}")
                break
        try:
            self._wait(jobs, "ingest")
            for job in jobs:
                results.update(self._job_results(job, operation, key_column))
        except (QuotaExhausted, RetriableApiError) as exc:
            # The jobs ran but their outcome cannot be read. Resending is harmless for upsert,
            # update and delete, so those records are parked or failed for the next run;
            # inserts are not safe to resend, so they are reported as unknown.
            code, why = unsent_code(exc)
            for job in jobs:
                for key in job.keys:
                    if key in results:
                        continue
                    if operation == "insert":
                        results[key] = RecordResult.failure(
                            key,
                            OUTCOME_UNKNOWN,
                            f"bulk job {job.id} ran but its results are unreadable "
                            f"({why}); check the job before resending",
                        )
                    else:
                        results[key] = RecordResult.failure(
                            key, code, f"bulk job {job.id}: result unread: {why}"
                        )
        return results

    def _start_ingest(
        self, sobject: str, operation: str, external_id_field: str | None, payload: bytes, keys: list[str]
    ) -> _Job:
        """Create a job, upload its CSV and mark it UploadComplete.

        Until the job is closed nothing is processed, so a quota running out here leaves the
        records unsent (an Open job is never processed and Salesforce removes it); from the
        close on, polls and result reads are charged even past our own budget.
        """
        spec: dict[str, Any] = {
            "object": sobject,
            "operation": operation,
            "contentType": "CSV",
            "columnDelimiter": "COMMA",
            "lineEnding": "LF",
        }
        if external_id_field:
            spec["externalIdFieldName"] = external_id_field
        job_id = str(self._call("bulk", "POST", "jobs/ingest", json=spec).json()["id"])
        path = f"jobs/ingest/{job_id}"
        try:
            self._call("bulk", "PUT", f"{path}/batches", data=payload, headers={"Content-Type": "text/csv"})
        except FatalApiError as exc:
            # A job takes one upload; 409 on our only upload means a retried PUT whose first
            # attempt's response was lost: the data is there.
            if exc.status != 409:
                raise
        try:
            self._call("bulk", "PATCH", path, json={"state": "UploadComplete"})
        except RetriableApiError as exc:
            # The close may have landed with its response lost: ask the job before calling it unsent.
            if exc.code != READ_ERROR or self._call("bulk", "GET", path).json().get("state") == "Open":
                raise
        log.info(
            "bulk %s %s: job %s started with %d records (%d bytes)",
            operation,
            sobject,
            job_id,
            len(keys),
            len(payload),
        )
        return _Job(job_id, keys)

    def _job_results(self, job: _Job, operation: str, key_column: str) -> dict[str, RecordResult]:
        """Read a finished job's successful, failed and unprocessed rows, keyed by input key."""
        info, uploaded = job.info, len(job.keys)
        processed = int(info.get("numberRecordsProcessed", -1))
        failed = int(info.get("numberRecordsFailed", -1))
        complete = info.get("state") == "JobComplete"
        wanted = set(job.keys)
        out: dict[str, RecordResult] = {}

        def key_of(row: Mapping[str, str]) -> str | None:
            key = row.get(key_column)
            if key is None and key_column == "Id":
                key = row.get("sf__Id")
            if key not in wanted:
                log.warning("bulk job %s returned a row for a key it was not given; ignored", job.id)
                return None
            return key

        path = f"jobs/ingest/{job.id}"
        if processed < 0 or failed < 0 or processed - failed > 0:
            for row in self._read(f"{path}/successfulResults/"):
                if key := key_of(row):
                    created = row.get("sf__Created", "").lower()
                    out[key] = RecordResult(
                        key=key,
                        id=row.get("sf__Id") or None,
                        created=created == "true" if created else None,
                        success=True,
                    )
        if failed != 0:
            for row in self._read(f"{path}/failedResults/"):
                if key := key_of(row):
                    code, message, fields = parse_sf_error(row.get("sf__Error", ""))
                    if operation == "delete" and code == "ENTITY_IS_DELETED":  # the goal is reached
                        out[key] = RecordResult(
                            key, row.get("sf__Id") or key, None, True, message="already deleted"
                        )
                        continue
                    out[key] = RecordResult(
                        key=key,
                        id=row.get("sf__Id") or None,
                        created=None,
                        success=False,
                        error_code=code,
                        message=message,
                        fields=fields,
                    )
        if not complete or processed < 0 or processed < uploaded:
            for row in self._read(f"{path}/unprocessedrecords/"):
                if (key := key_of(row)) and key not in out:
                    out[key] = RecordResult.failure(
                        key, UNPROCESSED, f"bulk job {job.id} left it unprocessed"
                    )
        for key in job.keys:
            if key not in out:
                out[key] = self._unreported(key, job, operation)
        log.info(
            "bulk job %s: %s, %d succeeded, %d failed, %d unprocessed",
            job.id,
            info.get("state"),
            sum(r.success for r in out.values()),
            sum(not r.success and r.error_code != UNPROCESSED for r in out.values()),
            sum(r.error_code == UNPROCESSED for r in out.values()),
        )
        return out

    @staticmethod
    def _unreported(key: str, job: _Job, operation: str) -> RecordResult:
        """A row no result file mentions: unknown for inserts, else safe to send again."""
        if operation == "insert":
            return RecordResult.failure(
                key, OUTCOME_UNKNOWN, f"bulk job {job.id} gave no result for it; check before resending"
            )
        if job.timed_out:
            return RecordResult.failure(key, "BULK_JOB_TIMEOUT", f"bulk job {job.id} did not finish in time")
        if job.info.get("state") == "Failed":
            return RecordResult.failure(
                key,
                "BULK_JOB_FAILED",
                f"bulk job {job.id} failed: {job.info.get('errorMessage') or 'no reason'}",
            )
        return RecordResult.failure(key, UNPROCESSED, f"bulk job {job.id} gave no result for it")

    def _read(self, path: str) -> list[dict[str, str]]:
        """GET one result file."""
        response = self._call("bulk", "GET", path, headers={"Accept": "text/csv"}, committed=True)
        return read_csv(response.content)

    # ---- polling ------------------------------------------------------------------------

    def _wait(self, jobs: Sequence[_Job], kind: str) -> None:
        """Poll ``jobs`` with growing pauses until each is terminal or the wait bound passes.

        A job still running at the bound is aborted (so it stops touching records) and then
        read like any other: what it did finish is reported, the rest comes back unprocessed.
        Reporting all of it as failed would be wrong (reference/anchors.md section 3.5).
        """
        pending = {job.id: job for job in jobs}
        deadline = self._clock() + self._poll.max_wait
        delay = self._poll.first
        while pending:
            left = deadline - self._clock()
            if left <= 0:
                break
            self._sleep(min(delay, left))
            for job in list(pending.values()):
                job.info = self._call("bulk", "GET", f"jobs/{kind}/{job.id}", committed=True).json()
                if job.info.get("state") in TERMINAL_STATES:
                    del pending[job.id]
            delay = min(delay * self._poll.factor, self._poll.cap)
        for job in pending.values():
            log.warning(
                "bulk job %s still %s after %.0f s: aborting it",
                job.id,
                job.info.get("state"),
                self._poll.max_wait,
            )
            job.timed_out = True
            try:
                self._call(
                    "bulk", "PATCH", f"jobs/{kind}/{job.id}", json={"state": "Aborted"}, committed=True
                )
            except FatalApiError as exc:  # it finished meanwhile: read it as it is
                log.info("bulk job %s could not be aborted (%s)", job.id, exc.code)
            job.info = self._call("bulk", "GET", f"jobs/{kind}/{job.id}", committed=True).json()

    # ---- query --------------------------------------------------------------------------

    def query(
        self, soql: str, *, include_deleted: bool = False, page_size: int | None = None
    ) -> Iterator[dict[str, str]]:
        """Run a Bulk 2.0 query job and stream its CSV rows page by page (Sforce-Locator)."""
        spec = {
            "operation": "queryAll" if include_deleted else "query",
            "query": soql,
            "contentType": "CSV",
            "columnDelimiter": "COMMA",
            "lineEnding": "LF",
        }
        job = _Job(str(self._call("bulk", "POST", "jobs/query", json=spec).json()["id"]), [])
        self._wait([job], "query")
        state = job.info.get("state")
        if job.timed_out:
            raise RetriableApiError(
                f"bulk query job {job.id} did not finish within {self._poll.max_wait:.0f} s",
                code="BULK_JOB_TIMEOUT",
            )
        if state != "JobComplete":
            raise FatalApiError(
                f"bulk query job {job.id} ended {state}: {job.info.get('errorMessage')}",
                code="BULK_JOB_FAILED",
            )
        log.info("bulk query job %s complete: %s records", job.id, job.info.get("numberRecordsProcessed"))
        locator: str | None = None
        seen: set[str] = set()
        while True:
            params: dict[str, Any] = {"locator": locator} if locator else {}
            if page_size:
                params["maxRecords"] = page_size
            response = self._call(
                "bulk", "GET", f"jobs/query/{job.id}/results", params=params, headers={"Accept": "text/csv"}
            )
            yield from read_csv(response.content)
            locator = response.headers.get("Sforce-Locator")
            if not locator or locator == "null":
                return
            if locator in seen:
                raise FatalApiError(f"bulk query job {job.id} returned locator {locator!r} twice")
            seen.add(locator)

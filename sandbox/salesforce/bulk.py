"""Bulk API 2.0: ingest jobs (CSV upload, background processing, result CSVs) and query jobs."""

from __future__ import annotations

import base64
import csv
import io
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from sandbox.salesforce.api import API_PREFIX, ApiContext, api_context, json_body, offload
from sandbox.salesforce.dml import Outcome
from sandbox.salesforce.errors import ApiError, SfError
from sandbox.salesforce.query import Compiled, compile_soql, csv_rows
from sandbox.salesforce.schema import FieldSchema, ObjectSchema
from sandbox.salesforce.values import format_datetime

if TYPE_CHECKING:
    from sandbox.salesforce.backend import SalesforceBackend

log = logging.getLogger(__name__)
Api = Annotated[ApiContext, Depends(api_context)]

# simple-salesforce keeps each upload at or under 100 MB (C:SS); the emulator enforces that cap.
MAX_UPLOAD_BYTES = 100 * 1024 * 1024
OPERATIONS = {"insert", "update", "upsert", "delete", "hardDelete"}
QUERY_OPERATIONS = {"query", "queryAll"}
DELIMITERS = {"COMMA", "TAB", "PIPE", "SEMICOLON", "CARET", "BACKQUOTE"}
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
ROWS_PER_TRANSACTION = 2000
RECORDS_PER_BATCH = 10_000  # Bulk 2.0 charges one batch per 10,000 records (C:SFD limits)
DEFAULT_MAX_RECORDS = 50_000
FINAL_STATES = {"JobComplete", "Failed", "Aborted"}


def _job_error(status: int, code: str, message: str) -> ApiError:
    return ApiError(status, code, message)


@dataclass
class IngestJob:
    """One Bulk 2.0 ingest job."""

    id: str
    object: ObjectSchema
    operation: str
    external_id_field: str | None
    line_ending: str
    api_version: str
    created: str
    state: str = "Open"
    data: bytes | None = None
    processed: int = 0
    failed: int = 0
    error_message: str | None = None
    header: list[str] = field(default_factory=list)
    successes: list[list[str]] = field(default_factory=list)
    failures: list[list[str]] = field(default_factory=list)
    unprocessed: list[list[str]] = field(default_factory=list)
    processing_ms: int = 0
    modstamp: str = ""

    def info(self) -> dict[str, Any]:
        """Job info as ``GET /jobs/ingest/{id}`` returns it."""
        body: dict[str, Any] = {
            "id": self.id,
            "operation": self.operation,
            "object": self.object.name,
            "createdById": "005000000000001AAA",
            "createdDate": self.created,
            "systemModstamp": self.modstamp or self.created,
            "state": self.state,
            "externalIdFieldName": self.external_id_field,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(self.api_version),
            "contentUrl": f"services/data/v{self.api_version}/jobs/ingest/{self.id}/batches",
            "lineEnding": self.line_ending,
            "columnDelimiter": "COMMA",
            "jobType": "V2Ingest",
            "numberRecordsProcessed": self.processed,
            "numberRecordsFailed": self.failed,
            "retries": 0,
            "totalProcessingTime": self.processing_ms,
            "apiActiveProcessingTime": self.processing_ms,
            "apexProcessingTime": 0,
        }
        if self.error_message:
            body["errorMessage"] = self.error_message
        return body


@dataclass
class QueryJob:
    """One Bulk 2.0 query job."""

    id: str
    operation: str
    query: str
    compiled: Compiled
    line_ending: str
    api_version: str
    created: str
    state: str = "UploadComplete"
    rows: list[list[str]] = field(default_factory=list)
    error_message: str | None = None
    processing_ms: int = 0
    modstamp: str = ""

    def info(self) -> dict[str, Any]:
        """Job info as ``GET /jobs/query/{id}`` returns it."""
        body: dict[str, Any] = {
            "id": self.id,
            "operation": self.operation,
            "object": self.compiled.obj.name,
            "createdById": "005000000000001AAA",
            "createdDate": self.created,
            "systemModstamp": self.modstamp or self.created,
            "state": self.state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(self.api_version),
            "jobType": "V2Query",
            "lineEnding": self.line_ending,
            "columnDelimiter": "COMMA",
            "numberRecordsProcessed": len(self.rows),
            "retries": 0,
            "totalProcessingTime": self.processing_ms,
        }
        if self.error_message:
            body["errorMessage"] = self.error_message
        return body


def _csv_text(header: list[str], rows: list[list[str]], line_ending: str) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=LINE_ENDINGS[line_ending])
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _encode_locator(offset: int) -> str:
    return base64.urlsafe_b64encode(str(offset).encode()).decode().rstrip("=")


def _decode_locator(locator: str) -> int:
    try:
        padded = locator + "=" * (-len(locator) % 4)
        return int(base64.urlsafe_b64decode(padded.encode()).decode())
    except ValueError:
        raise ApiError(400, "INVALIDLOCATOR", f"Invalid locator: {locator}") from None


class BulkJobs:
    """Bulk jobs of one emulator, processed one at a time on a background thread."""

    def __init__(self, backend: SalesforceBackend) -> None:
        self.backend = backend
        self.ingest: dict[str, IngestJob] = {}
        self.queries: dict[str, QueryJob] = {}
        self.lock = threading.RLock()
        self._stop = threading.Event()
        self._executor: ThreadPoolExecutor | None = None
        self._generation = 0
        self._rng = random.Random()  # noqa: S311 - shuffles result order, nothing secret

    # -- lifecycle -------------------------------------------------------------------------

    def _submit(self, fn: Callable[..., None], *args: Any) -> None:
        with self.lock:
            if self._stop.is_set():
                return
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sandbox-sf-bulk")
            generation = self._generation
            self._executor.submit(self._guarded, fn, generation, *args)

    def _guarded(self, fn: Callable[..., None], generation: int, *args: Any) -> None:
        try:
            fn(generation, *args)
        except Exception:
            log.exception("bulk job processing crashed")

    def reset(self) -> None:
        """Forget every job; jobs still processing drop their results."""
        with self.lock:
            self._generation += 1
            self.ingest.clear()
            self.queries.clear()

    def close(self) -> None:
        """Stop the worker thread (pending jobs are cancelled)."""
        self._stop.set()
        with self.lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    def _stale(self, generation: int) -> bool:
        return self._stop.is_set() or generation != self._generation

    def _pause(self) -> bool:
        """Wait half the processing delay; False when the emulator is stopping."""
        return not self._stop.wait(self.backend.config.bulk_processing_delay_s / 2)

    def describe(self, kind: str) -> list[dict[str, Any]]:
        """Job infos for ``GET /_sandbox/state?jobs=ingest|query``."""
        with self.lock:
            jobs = self.ingest.values() if kind == "ingest" else self.queries.values()
            return [job.info() for job in jobs]

    # -- ingest ----------------------------------------------------------------------------

    def create_ingest(self, body: Any, version: str) -> IngestJob:
        """Validate a job definition and open the job."""
        if not isinstance(body, dict):
            raise _job_error(400, "INVALIDJOB", "InvalidJob : the job definition must be a JSON object")
        operation = body.get("operation")
        if operation not in OPERATIONS:
            raise _job_error(400, "INVALIDJOB", f"InvalidJob : Invalid operation: {operation}")
        name = body.get("object")
        obj = next((o for o in self.backend.schemas.values() if o.name.lower() == str(name).lower()), None)
        if obj is None:
            raise _job_error(400, "INVALIDJOB", f"InvalidJob : Unable to find object: {name}")
        if body.get("contentType", "CSV") != "CSV":
            raise _job_error(
                400, "INVALIDJOB", f"InvalidJob : Invalid contentType: {body.get('contentType')}"
            )
        delimiter = body.get("columnDelimiter", "COMMA")
        if delimiter not in DELIMITERS:
            raise _job_error(400, "INVALIDJOB", f"InvalidJob : Invalid columnDelimiter: {delimiter}")
        if delimiter != "COMMA":
            raise _job_error(
                400,
                "NOT_SUPPORTED_BY_SANDBOX",
                f"columnDelimiter {delimiter} is valid in Salesforce but the crm_sync sandbox "
                "supports only COMMA",
            )
        line_ending = body.get("lineEnding", "LF")
        if line_ending not in LINE_ENDINGS:
            raise _job_error(400, "INVALIDJOB", f"InvalidJob : Invalid lineEnding: {line_ending}")
        external = body.get("externalIdFieldName")
        if operation == "upsert":
            key = obj.field(str(external)) if external else None
            if key is None or not (key.external_id or key.name == "Id"):
                raise _job_error(
                    400,
                    "INVALIDJOB",
                    f"InvalidJob : Field name provided, {external} is not an External ID or indexed "
                    f"field for {obj.name}",
                )
            external = key.name
        elif external:
            raise _job_error(400, "INVALIDJOB", "InvalidJob : externalIdFieldName is only valid for upsert")
        job = IngestJob(
            id=self.backend.ids.new("750"),
            object=obj,
            operation=operation,
            external_id_field=external,
            line_ending=line_ending,
            api_version=version,
            created=format_datetime(self.backend.dml.clock()),
        )
        with self.lock:
            self.ingest[job.id] = job
        return job

    def ingest_job(self, job_id: str) -> IngestJob:
        """A job by id, or 404 NOT_FOUND."""
        with self.lock:
            job = self.ingest.get(job_id)
        if job is None:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        return job

    def upload(self, job: IngestJob, content_type: str, data: bytes) -> None:
        """Store the job's CSV."""
        if not content_type.lower().startswith("text/csv"):
            raise _job_error(
                415, "UNSUPPORTED_MEDIA_TYPE", f"Content-Type must be text/csv, not {content_type or 'none'}"
            )
        with self.lock:
            if job.state != "Open":
                raise _job_error(
                    409,
                    "INVALIDJOBSTATE",
                    f"Job {job.id} is {job.state}; data can be uploaded only to an Open job",
                )
            if job.data is not None:
                raise _job_error(
                    409, "INVALIDJOBSTATE", f"Job {job.id} already has its data; create a new job for more"
                )
            job.data = data

    def set_state(self, job: IngestJob, state: Any) -> None:
        """Close (UploadComplete) or abort a job."""
        with self.lock:
            if state == "UploadComplete":
                if job.state != "Open":
                    raise _job_error(409, "INVALIDJOBSTATE", f"Job {job.id} is {job.state}, not Open")
                job.state = "UploadComplete"
                job.modstamp = format_datetime(self.backend.dml.clock())
                self._submit(self._process_ingest, job)
            elif state == "Aborted":
                if job.state not in {"Open", "UploadComplete"}:
                    raise _job_error(
                        409, "INVALIDJOBSTATE", f"Job {job.id} is {job.state} and cannot be aborted"
                    )
                job.state = "Aborted"
            else:
                raise _job_error(
                    400, "INVALIDJOBSTATE", f"Invalid state: {state}; use UploadComplete or Aborted"
                )

    def delete_ingest(self, job: IngestJob) -> None:
        """Remove a finished job."""
        with self.lock:
            if job.state not in FINAL_STATES:
                raise _job_error(
                    409, "INVALIDJOBSTATE", f"Job {job.id} is {job.state}; only finished jobs can be deleted"
                )
            self.ingest.pop(job.id, None)

    def _fail(self, job: IngestJob, message: str) -> None:
        with self.lock:
            job.state = "Failed"
            job.error_message = message
            job.modstamp = format_datetime(self.backend.dml.clock())

    def _parse(self, job: IngestJob) -> tuple[list[str], list[list[str]]] | None:
        if job.data is None:
            self._fail(job, "InvalidBatch : No data was uploaded for this job")
            return None
        text = job.data.decode("utf-8-sig", errors="replace")
        has_crlf = "\r\n" in text
        if (job.line_ending == "LF" and has_crlf) or (
            job.line_ending == "CRLF" and "\n" in text and not has_crlf
        ):
            self._fail(
                job,
                "ClientInputError : LineEnding is invalid on user data. "
                f"Current LineEnding setting is {job.line_ending}",
            )
            return None
        rows = [row for row in csv.reader(io.StringIO(text, newline="")) if row]
        if not rows:
            self._fail(job, "InvalidBatch : The uploaded data is empty")
            return None
        header, body = rows[0], rows[1:]
        bad = next((i + 2 for i, row in enumerate(body) if len(row) != len(header)), None)
        if bad is not None:
            self._fail(job, f"ClientInputError : Wrong number of columns on line {bad}")
            return None
        return header, body

    def _check_header(self, job: IngestJob, header: list[str]) -> dict[str, FieldSchema] | None:
        fields: dict[str, FieldSchema] = {}
        for name in header:
            f = job.object.field(name.strip())
            if f is None:
                self._fail(job, f"InvalidBatch : Field name not found : {name}")
                return None
            if f.name in {v.name for v in fields.values()}:
                self._fail(job, f"InvalidBatch : Duplicate field name : {name}")
                return None
            fields[name] = f
        names = {f.name for f in fields.values()}
        if job.operation in {"update", "delete", "hardDelete"} and "Id" not in names:
            self._fail(job, "InvalidBatch : Field name not provided: Id")
            return None
        if job.operation in {"delete", "hardDelete"} and names != {"Id"}:
            self._fail(job, f"InvalidBatch : The '{job.operation}' batch must contain only 'Id'")
            return None
        if job.operation == "upsert" and job.external_id_field not in names:
            self._fail(job, f"InvalidBatch : Field name not provided: {job.external_id_field}")
            return None
        return fields

    def _process_ingest(self, generation: int, job: IngestJob) -> None:
        if not self._pause() or self._stale(generation) or job.state != "UploadComplete":
            return
        started = time.monotonic()
        with self.lock:
            job.state = "InProgress"
        parsed = self._parse(job)
        fields = self._check_header(job, parsed[0]) if parsed else None
        if parsed is None or fields is None:
            return
        header, rows = parsed
        config = self.backend.config
        leave = min(config.bulk_unprocessed_records, len(rows))
        if leave:
            config.bulk_unprocessed_records = 0  # the knob affects only the next job
        to_do, unprocessed = rows[: len(rows) - leave], rows[len(rows) - leave :]
        successes, failures = self._apply_rows(job, header, fields, to_do)
        if self._stale(generation):
            return
        self.backend.usage.bulk_batches += max(1, -(-len(rows) // RECORDS_PER_BATCH))
        self._rng.shuffle(successes)  # Salesforce does not promise any result order (C:SFD)
        self._rng.shuffle(failures)
        if not self._pause() or self._stale(generation):
            return
        with self.lock:
            job.header = header
            job.successes, job.failures, job.unprocessed = successes, failures, unprocessed
            job.processed = len(successes) + len(failures)
            job.failed = len(failures)
            job.processing_ms = int((time.monotonic() - started) * 1000)
            job.modstamp = format_datetime(self.backend.dml.clock())
            if unprocessed:
                job.state = "Failed"
                job.error_message = (
                    f"InternalServerError : {len(unprocessed)} records were not processed: "
                    "internal batches exhausted their retries"
                )
            else:
                job.state = "JobComplete"

    def _apply_rows(
        self, job: IngestJob, header: list[str], fields: dict[str, FieldSchema], rows: list[list[str]]
    ) -> tuple[list[list[str]], list[list[str]]]:
        dml = self.backend.dml
        obj = job.object
        successes: list[list[str]] = []
        failures: list[list[str]] = []
        key_index = next(
            (i for i, name in enumerate(header) if fields[name].name == job.external_id_field), None
        )
        id_index = next((i for i, name in enumerate(header) if fields[name].name == "Id"), None)
        duplicates: Counter[str] = Counter()
        if job.operation == "upsert" and key_index is not None:
            duplicates = Counter(row[key_index].lower() for row in rows if row[key_index])
        key = obj.field(job.external_id_field) if job.external_id_field else None

        def one(row: list[str]) -> Outcome:
            record = dict(zip(header, row, strict=True))
            if job.operation == "insert":
                return dml.insert(obj, record, from_csv=True, fields=fields)
            if job.operation == "upsert":
                assert key is not None
                assert key_index is not None
                value = row[key_index]
                if value and duplicates[value.lower()] > 1:
                    return Outcome.fail(
                        SfError(
                            "DUPLICATE_EXTERNAL_ID", f"Duplicate external id specified: {value}", [key.name]
                        )
                    )
                return dml.upsert(obj, key, value or None, record, from_csv=True, fields=fields)
            assert id_index is not None
            record_id = row[id_index]
            if not record_id:
                return Outcome.fail(SfError("MISSING_ARGUMENT", "Id not specified in an update call", ["Id"]))
            if job.operation == "update":
                return dml.update(obj, record_id, record, from_csv=True, fields=fields)
            return dml.delete(obj, record_id, hard=job.operation == "hardDelete")

        for start in range(0, len(rows), ROWS_PER_TRANSACTION):
            if self._stop.is_set():
                break
            with self.backend.store.transaction():
                for row in rows[start : start + ROWS_PER_TRANSACTION]:
                    outcome = one(row)
                    if outcome.success:
                        successes.append([outcome.id or "", "true" if outcome.created else "false", *row])
                    else:
                        failures.append([outcome.id or "", outcome.errors[0].as_bulk(), *row])
        return successes, failures

    def ingest_results(self, job: IngestJob, kind: str) -> str:
        """CSV for successfulResults, failedResults or unprocessedrecords."""
        with self.lock:
            header = job.header
            if not header and job.data:
                first = job.data.decode("utf-8-sig", errors="replace").splitlines()[:1]
                header = next(csv.reader(first), []) if first else []
            if kind == "successfulResults":
                return _csv_text(["sf__Id", "sf__Created", *header], job.successes, job.line_ending)
            if kind == "failedResults":
                return _csv_text(["sf__Id", "sf__Error", *header], job.failures, job.line_ending)
            rows = job.unprocessed
            if job.state in {"Open", "UploadComplete", "Aborted"} and job.data:
                rows = [
                    r for r in csv.reader(io.StringIO(job.data.decode("utf-8-sig", errors="replace"))) if r
                ][1:]
            return _csv_text(header, rows, job.line_ending)

    # -- query -----------------------------------------------------------------------------

    def create_query(self, body: Any, version: str) -> QueryJob:
        """Validate and compile the query, then process it in the background."""
        if not isinstance(body, dict):
            raise _job_error(400, "INVALIDJOB", "InvalidJob : the job definition must be a JSON object")
        operation = body.get("operation", "query")
        if operation not in QUERY_OPERATIONS:
            raise _job_error(400, "INVALIDJOB", f"InvalidJob : Invalid operation: {operation}")
        text = body.get("query")
        if not isinstance(text, str) or not text.strip():
            raise _job_error(400, "INVALIDJOB", "InvalidJob : query is required")
        delimiter = body.get("columnDelimiter", "COMMA")
        if delimiter != "COMMA":
            raise _job_error(
                400,
                "NOT_SUPPORTED_BY_SANDBOX",
                f"columnDelimiter {delimiter} is not supported by the crm_sync sandbox",
            )
        line_ending = body.get("lineEnding", "LF")
        if line_ending not in LINE_ENDINGS:
            raise _job_error(400, "INVALIDJOB", f"InvalidJob : Invalid lineEnding: {line_ending}")
        query, compiled = compile_soql(
            self.backend.store, text, include_deleted=operation == "queryAll", today=self.backend.today()
        )
        if query.count_only or query.offset is not None or query.fields_macro:
            raise _job_error(
                400,
                "INVALIDJOB",
                "InvalidJob : COUNT(), OFFSET and FIELDS() are not supported by Bulk API 2.0 query",
            )
        job = QueryJob(
            id=self.backend.ids.new("750"),
            operation=operation,
            query=text,
            compiled=compiled,
            line_ending=line_ending,
            api_version=version,
            created=format_datetime(self.backend.dml.clock()),
        )
        with self.lock:
            self.queries[job.id] = job
            self.backend.usage.bulk_query_jobs += 1
        self._submit(self._process_query, job)
        return job

    def query_job(self, job_id: str) -> QueryJob:
        """A query job by id, or 404 NOT_FOUND."""
        with self.lock:
            job = self.queries.get(job_id)
        if job is None:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        return job

    def _process_query(self, generation: int, job: QueryJob) -> None:
        if not self._pause() or self._stale(generation) or job.state != "UploadComplete":
            return
        started = time.monotonic()
        with self.lock:
            job.state = "InProgress"
        rows = csv_rows(job.compiled, self.backend.store.select(job.compiled.sql, job.compiled.params))
        if not self._pause() or self._stale(generation):
            return
        with self.lock:
            if job.state != "InProgress":
                return
            job.rows = rows
            job.processing_ms = int((time.monotonic() - started) * 1000)
            job.modstamp = format_datetime(self.backend.dml.clock())
            job.state = "JobComplete"

    def query_results(
        self, job: QueryJob, version: str, locator: str | None, max_records: int
    ) -> tuple[str, str, int]:
        """One page of results: (CSV, next locator or ``null``, rows in the page)."""
        if version != job.api_version:
            raise _job_error(
                409,
                "INVALIDJOBSTATE",
                f"Job {job.id} was created with API v{job.api_version}; fetch its results with it",
            )
        with self.lock:
            if job.state != "JobComplete":
                raise _job_error(
                    400, "JOB_NOT_COMPLETE", f"Job {job.id} is {job.state}; results are not ready"
                )
            rows = job.rows
        offset = _decode_locator(locator) if locator else 0
        page = rows[offset : offset + max_records]
        end = offset + len(page)
        next_locator = _encode_locator(end) if end < len(rows) else "null"
        header = [column.header for column in job.compiled.columns]
        return _csv_text(header, page, job.line_ending), next_locator, len(page)

    def abort_query(self, job: QueryJob, state: Any) -> None:
        """``PATCH {"state": "Aborted"}`` on a query job."""
        with self.lock:
            if state != "Aborted":
                raise _job_error(
                    400, "INVALIDJOBSTATE", f"Invalid state: {state}; query jobs can only be Aborted"
                )
            if job.state in FINAL_STATES:
                raise _job_error(409, "INVALIDJOBSTATE", f"Job {job.id} is {job.state} and cannot be aborted")
            job.state = "Aborted"

    def delete_query(self, job: QueryJob) -> None:
        """Remove a finished query job."""
        with self.lock:
            if job.state not in FINAL_STATES:
                raise _job_error(
                    409, "INVALIDJOBSTATE", f"Job {job.id} is {job.state}; only finished jobs can be deleted"
                )
            self.queries.pop(job.id, None)


def _jobs(request: Request) -> BulkJobs:
    return request.app.state.backend.bulk


def bulk_router() -> APIRouter:
    """Routes under ``/jobs/ingest`` and ``/jobs/query``."""
    router = APIRouter()
    ingest = API_PREFIX + "/jobs/ingest"
    query = API_PREFIX + "/jobs/query"

    @router.post(ingest)
    async def create_ingest(request: Request, ctx: Api) -> dict[str, Any]:
        job = _jobs(request).create_ingest(await json_body(request), ctx.version)
        info = job.info()
        return {
            k: info[k]
            for k in (
                "id",
                "operation",
                "object",
                "createdById",
                "createdDate",
                "systemModstamp",
                "state",
                "externalIdFieldName",
                "concurrencyMode",
                "contentType",
                "apiVersion",
                "contentUrl",
                "lineEnding",
                "columnDelimiter",
            )
        }

    @router.get(ingest)
    def list_ingest(request: Request, ctx: Api) -> dict[str, Any]:
        return {"done": True, "records": _jobs(request).describe("ingest"), "nextRecordsUrl": None}

    @router.put(ingest + "/{job_id}/batches")
    async def upload(job_id: str, request: Request, ctx: Api) -> Response:
        jobs = _jobs(request)
        job = jobs.ingest_job(job_id)
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size <= MAX_UPLOAD_BYTES:
                chunks.append(chunk)
        if size > MAX_UPLOAD_BYTES:
            raise _job_error(
                413, "EXCEEDED_MAX_SIZE", f"Upload of {size} bytes exceeds the 100 MB limit per job"
            )
        jobs.upload(job, request.headers.get("content-type", ""), b"".join(chunks))
        return Response(status_code=201)

    @router.patch(ingest + "/{job_id}")
    async def patch_ingest(job_id: str, request: Request, ctx: Api) -> dict[str, Any]:
        jobs = _jobs(request)
        job = jobs.ingest_job(job_id)
        body = await json_body(request)
        jobs.set_state(job, body.get("state") if isinstance(body, dict) else None)
        return job.info()

    @router.get(ingest + "/{job_id}")
    def get_ingest(job_id: str, request: Request, ctx: Api) -> dict[str, Any]:
        return _jobs(request).ingest_job(job_id).info()

    @router.delete(ingest + "/{job_id}")
    def delete_ingest(job_id: str, request: Request, ctx: Api) -> Response:
        jobs = _jobs(request)
        jobs.delete_ingest(jobs.ingest_job(job_id))
        return Response(status_code=204)

    @router.get(ingest + "/{job_id}/{kind}")
    async def results(job_id: str, kind: str, request: Request, ctx: Api) -> Response:
        if kind not in {"successfulResults", "failedResults", "unprocessedrecords"}:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        jobs = _jobs(request)
        text = await offload(jobs.ingest_results, jobs.ingest_job(job_id), kind)
        return Response(text, media_type="text/csv")

    @router.post(query)
    async def create_query(request: Request, ctx: Api) -> dict[str, Any]:
        body = await json_body(request)
        job = await offload(_jobs(request).create_query, body, ctx.version)
        return job.info()

    @router.get(query)
    def list_query(request: Request, ctx: Api) -> dict[str, Any]:
        return {"done": True, "records": _jobs(request).describe("query"), "nextRecordsUrl": None}

    @router.get(query + "/{job_id}")
    def get_query(job_id: str, request: Request, ctx: Api) -> dict[str, Any]:
        return _jobs(request).query_job(job_id).info()

    @router.patch(query + "/{job_id}")
    async def patch_query(job_id: str, request: Request, ctx: Api) -> dict[str, Any]:
        jobs = _jobs(request)
        job = jobs.query_job(job_id)
        body = await json_body(request)
        jobs.abort_query(job, body.get("state") if isinstance(body, dict) else None)
        return job.info()

    @router.delete(query + "/{job_id}")
    def delete_query(job_id: str, request: Request, ctx: Api) -> Response:
        jobs = _jobs(request)
        jobs.delete_query(jobs.query_job(job_id))
        return Response(status_code=204)

    @router.get(query + "/{job_id}/results")
    async def query_results(job_id: str, request: Request, ctx: Api) -> Response:
        jobs = _jobs(request)
        raw_max = request.query_params.get("maxRecords")
        try:
            max_records = int(raw_max) if raw_max else DEFAULT_MAX_RECORDS
        except ValueError:
            raise ApiError(
                400, "INVALIDPARAMETER", f"maxRecords must be a positive integer: {raw_max}"
            ) from None
        if max_records < 1:
            raise ApiError(400, "INVALIDPARAMETER", "maxRecords must be a positive integer")
        locator = request.query_params.get("locator") or None
        if locator == "null":
            locator = None
        text, next_locator, count = await offload(
            jobs.query_results, jobs.query_job(job_id), ctx.version, locator, max_records
        )
        return Response(
            text,
            media_type="text/csv",
            headers={"Sforce-Locator": next_locator, "Sforce-NumberOfRecords": str(count)},
        )

    return router

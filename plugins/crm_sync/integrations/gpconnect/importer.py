"""What the gpconnect_rapidpro_import DAG runs: discover, the staging extract, finish.

Everything here runs inside tasks (never at parse time) with the run's
:class:`~crm_sync.operators.context.SyncRun`; the pusher is in :mod:`.pusher`.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from crm_sync.exceptions import ConfigurationError, RecordRejected
from crm_sync.integrations.gpconnect import files, retry
from crm_sync.integrations.gpconnect.config import FLOW_TYPES, GpConnectConfig, OrgConfig, load_config
from crm_sync.operators.context import SyncRun

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

INTEGRATION = "gpconnect_rapidpro_import"
ENTITY = "row"
KEY = "row_key"
CONFIG_VARIABLE = "gpconnect_rapidpro_import_config"
DISCOVER_TASK = "discover_files"


def gpconnect_config(run: SyncRun) -> GpConnectConfig:
    """The file's settings, then the Variable, then the ``config`` Param."""
    from airflow.sdk import Variable

    stored = Variable.get(CONFIG_VARIABLE, default=None, deserialize_json=True) or {}
    return load_config(stored, run.params.get("config") or {})


def requested_by(run: SyncRun) -> str:
    """The triggering user, or ``scheduler`` for a scheduled run."""
    return "scheduler" if run.triggered_by in {"scheduled", "DagRunType.SCHEDULED"} else run.triggered_by


def _staging() -> Engine:
    from crm_sync.hooks.database import StagingHook

    return StagingHook().get_engine()


def _retried_keys(run: SyncRun) -> set[str]:
    """The row keys a retry (the ``keys`` Param) asks for; empty for an ordinary run."""
    return {key for keys in retry.requested_rows(run).values() for key in keys}


def run_org(run: SyncRun, config: GpConnectConfig, engine: Engine) -> OrgConfig:
    """The run's org: a retry's is the org its rows were imported for, else the ``org`` Param."""
    by_import = retry.requested_rows(run)
    name = retry.import_org(engine, INTEGRATION, by_import) if by_import else run.params.get("org")
    return config.org(name)


def _check_flows(org: OrgConfig) -> None:
    """The org's workspace is the token's and each of its flows exists (before any write)."""
    from crm_sync.hooks.rapidpro import RapidProHook

    rapidpro = RapidProHook(org.rapidpro_conn_id)
    rapidpro.check_workspace()
    for flow_type in FLOW_TYPES:
        uuid = org.flow(flow_type)
        log.info("%s flow: %s (%s)", flow_type, rapidpro.flow(uuid).name, uuid)


# ---- discover ------------------------------------------------------------------------------------


def discover(run: SyncRun) -> dict[str, Any]:
    """List the bucket, pick this run's files, check the org's flows; record the imports.

    A retry (the ``keys`` Param) picks the file version of each requested row's import instead
    and records nothing in ``file_import``.

    Raises:
        ConfigurationError: unknown org, missing or archived flow, a token of another
            workspace, a ``file_key`` that is not in the bucket, or a retried key that is not a
            row key, of no import, or of a file replaced since: before anything is written.
    """
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    by_import = retry.requested_rows(run)  # first: a malformed key never reaches a query
    config = gpconnect_config(run)
    engine = _staging()
    org = run_org(run, config, engine)
    for flow_type in FLOW_TYPES:
        org.flow(flow_type)  # an org without a configured flow is refused before any read
    listed = files.list_files(S3Hook(aws_conn_id=config.aws_conn_id), config)
    if by_import:
        selections = retry.retry_selections(engine, INTEGRATION, by_import, listed)
        _check_flows(org)
        rows = sum(len(keys) for keys in by_import.values())
        log.info("retry: %d row(s) of %d import(s)", rows, len(selections))
        return {
            "listed": len(listed),
            "replaced": 0,
            "org": org.name,
            "files": [selected.as_dict() for selected in selections],
        }
    replaced = 0 if run.dry_run else files.mark_replaced(engine, integration=INTEGRATION, listed=listed)
    chosen, notes = files.select_files(
        engine,
        integration=INTEGRATION,
        listed=listed,
        limit=config.files_per_run,
        file_key=(run.params.get("file_key") or "").strip() or None,
        reprocess=bool(run.params.get("reprocess")),
        run_id=run.run_id,
    )
    for note in notes:
        log.warning("%s", note)
    if chosen:
        _check_flows(org)
    if not run.dry_run:
        for item, selected in chosen:
            files.start_import(
                engine,
                integration=INTEGRATION,
                item=item,
                selected=selected,
                org=org.name,
                requested_by=requested_by(run),
                run_id=run.run_id,
            )
    log.info(
        "%d report(s) under s3://%s/%s; importing %s",
        len(listed),
        config.bucket,
        config.prefix,
        [f"{s.file_key} ({'resumed' if s.resumed else 'new'})" for _, s in chosen] or "nothing",
    )
    return {
        "listed": len(listed),
        "replaced": replaced,
        "org": org.name,
        "files": [selected.as_dict() for _, selected in chosen],
    }


def _selections() -> list[dict[str, Any]]:
    from airflow.sdk import get_current_context

    found = get_current_context()["ti"].xcom_pull(task_ids=DISCOVER_TASK) or {}
    return list(found.get("files") or [])


# ---- stage ---------------------------------------------------------------------------------------


def row_records(run: SyncRun) -> Iterator[dict[str, Any] | RecordRejected]:
    """The kept rows of this run's files, shaped for staging (bad rows as RecordRejected).

    A file that cannot be imported (sheet, headers) is marked ``failed`` with the reason, and
    the other files go on; ``finish_imports`` then fails the run naming it. A retry keeps only
    the requested rows, after reading the whole file (a duplicate phone stays a duplicate).
    """
    selections = _selections()
    if not selections:
        return
    wanted = _retried_keys(run)
    # openpyxl reads /etc/mime.types when imported: keep it out of DAG parsing.
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from crm_sync.hooks.rapidpro import RapidProHook
    from crm_sync.integrations.gpconnect.rows import HAS_WHATSAPP, ParseStats, columns_for, shape_rows
    from crm_sync.integrations.gpconnect.workbook import FileRejected, open_report

    config = gpconnect_config(run)
    engine = _staging()
    org = run_org(run, config, engine)
    rapidpro = RapidProHook(org.rapidpro_conn_id)
    field_types = {key: info.value_type for key, info in rapidpro.fields().items()}
    if HAS_WHATSAPP not in field_types:
        # The seed's precondition: the WhatsApp check result needs a field to land in.
        raise ConfigurationError(
            f"the RapidPro workspace of {org.name!r} has no contact field {HAS_WHATSAPP!r}"
        )
    tz = _zone(rapidpro.workspace().timezone)
    s3 = S3Hook(aws_conn_id=config.aws_conn_id)
    with tempfile.TemporaryDirectory(prefix="gpconnect-") as tmp:
        for selection in selections:
            path = _download(s3, config, selection, Path(tmp))
            stats = ParseStats()
            try:
                with open_report(
                    path, sheet=config.sheet, first_sheet_fallback=config.first_sheet_fallback
                ) as report:
                    if report.fell_back:
                        log.warning(
                            "%s has no sheet %r: reading its first sheet %r",
                            selection["file_key"],
                            config.sheet,
                            report.sheet_name,
                        )
                    columns = columns_for(report.headers, field_types)
                    shaped = shape_rows(
                        report.rows(),
                        columns,
                        import_id=selection["import_id"],
                        region=config.default_region,
                        epoch=report.epoch,
                        tz=tz,
                        stats=stats,
                    )
                    yield from (r for r in shaped if not wanted or _key(r) in wanted)
            except FileRejected as exc:
                log.warning("%s cannot be imported: %s", selection["file_key"], exc)
                if wanted:
                    raise ConfigurationError(f"Param 'keys': {selection['file_key']}: {exc}") from None
                if not run.dry_run:
                    _mark(
                        engine, selection, status=files.FAILED, error=str(exc), finished_at=datetime.now(UTC)
                    )
                continue
            finally:
                path.unlink(missing_ok=True)
            log.info(
                "%s: %d data rows, %d kept (patients_tested_positive = 1), %d rejected while reading",
                selection["file_key"],
                stats.rows_total,
                stats.rows_kept,
                stats.rejected,
            )
            if not run.dry_run and not wanted:
                _mark(engine, selection, rows_total=stats.rows_total, rows_kept=stats.rows_kept)


def _key(record: Mapping[str, Any] | RecordRejected) -> str | None:
    return record.key if isinstance(record, RecordRejected) else record[KEY]


def _zone(name: str | None) -> Any:
    try:
        return ZoneInfo(name) if name else None
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _download(s3: Any, config: GpConnectConfig, selection: Mapping[str, Any], tmp: Path) -> Path:
    """Stream the selected version to a temporary file (IfMatch: never a newer upload)."""
    suffix = Path(selection["file_key"]).suffix.lower()
    path = tmp / f"{selection['import_id']}{suffix}"
    try:
        answer = s3.get_conn().get_object(
            Bucket=config.bucket, Key=selection["file_key"], IfMatch=f'"{selection["etag"]}"'
        )
    except Exception as exc:  # botocore's ClientError carries the status reported below
        status = getattr(exc, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status == 412:
            raise ConfigurationError(
                f"{selection['file_key']} was replaced while this run imported it; "
                "the next run imports the new version"
            ) from None
        raise
    with path.open("wb") as out:
        for chunk in answer["Body"].iter_chunks(1 << 20):
            out.write(chunk)
    return path


def _mark(engine: Engine, selection: Mapping[str, Any], **values: Any) -> None:
    files.mark(
        engine, integration=INTEGRATION, file_key=selection["file_key"], etag=selection["etag"], **values
    )


# ---- finish --------------------------------------------------------------------------------------


def finish(run: SyncRun) -> dict[str, Any]:
    """Count each file's row outcomes; mark it imported when every kept row has one.

    Returns:
        Per-file counts and statuses (keys and counts only).
    """
    selections = _selections()
    engine = _staging()
    results = []
    retried = bool(_retried_keys(run))
    for record in files.imports_of_run(engine, integration=INTEGRATION, selections=selections):
        if run.dry_run:
            results.append({"file_key": record["file_key"], "status": "dry_run"})
            continue
        if record["status"] == files.FAILED:
            results.append({"file_key": record["file_key"], "status": files.FAILED, "error": record["error"]})
            continue
        kept = int(record["rows_kept"] or 0)
        # Over every run that worked on this import: a retry of some rows (Param keys) closes
        # the import once its last open row has an outcome.
        counts = files.file_counts(
            engine, integration=INTEGRATION, import_id=record["import_id"], rows_kept=kept
        )
        done = counts.rows_open == 0
        values: dict[str, Any] = {"rows_ok": counts.rows_ok, "rows_rejected": counts.rows_rejected}
        if done:
            values.update(status=files.IMPORTED, finished_at=datetime.now(UTC))
        _mark(engine, record, **values)
        log.info(
            "%s: %d rows ok, %d rejected, %d without an outcome -> %s",
            record["file_key"],
            counts.rows_ok,
            counts.rows_rejected,
            counts.rows_open,
            files.IMPORTED if done else "still importing (the next run resumes it)",
        )
        results.append(
            {
                "file_key": record["file_key"],
                "status": files.IMPORTED if done else files.IMPORTING,
                "rows_total": record["rows_total"],
                "rows_kept": kept,
                "rows_ok": counts.rows_ok,
                "rows_rejected": counts.rows_rejected,
                "rows_open": counts.rows_open,
                **({"retried": True} if retried else {}),
            }
        )
    return {"files": results}


# ---- push ----------------------------------------------------------------------------------------


def row_pusher(run: SyncRun, engine: Engine) -> Any:
    """The push step's writer: WhatsApp check, RapidPro contacts, flow starts via the outbox."""
    from crm_sync.integrations.gpconnect.pusher import GpConnectPusher

    config = gpconnect_config(run)
    return GpConnectPusher(run, engine, config, run_org(run, config, engine))


def no_snapshot(run: SyncRun) -> list[tuple[str, str, str | None]]:
    """The ``full_refresh`` baseline: nothing, so every row of the file is checked again.

    Rows whose flow start is in the outbox as done are not started again.
    """
    return []

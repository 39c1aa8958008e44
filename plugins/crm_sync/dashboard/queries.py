"""Read-only views of the ledger for the dashboard, its JSON endpoints and the metrics.

Everything here reads the staging database (``sync_run``, ``sync_log``, ``quarantine``,
``outbox``, ``quota_usage``, ``file_import``) and returns JSON-ready dicts. A run's summary
comes from :func:`crm_sync.sync.ledger.run_summary` (or the copy ``finish_run`` stored in
``sync_run.counts``), so the page and the task log never disagree. No field values are
returned: keys, codes, counts and scrubbed messages only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from crm_sync.dashboard.privacy import scrub
from crm_sync.dashboard.registry import dag_id_for, integrations
from crm_sync.sync.ledger import run_summary
from crm_sync.sync.records import Status
from crm_sync.sync.schema import file_import, outbox, quarantine, quota_usage, sync_log, sync_run

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

__all__ = [
    "TREND_DAYS",
    "RejectedFilter",
    "api_budgets",
    "file_imports",
    "mobile_commons_categories",
    "outcome_counts",
    "overview",
    "record_history",
    "rejected_records",
    "run_detail",
    "runs",
]

TREND_DAYS = 30
HISTORY_LIMIT = 500
MOBILE_COMMONS = "%mobile_commons%"
SUCCESS_STATES = ("success",)
NOT_SYNCED = (Status.REJECTED.value, Status.FAILED.value)
"""Outcomes the rejected-records list shows: refused by the target, or failed for good in a run."""


def outcome_counts(summary: Mapping[str, Any]) -> dict[str, int]:
    """Reduce a run summary to the dashboard's counts.

    ``created``/``updated``/``deleted`` are successful writes (a claimed existing record
    counts as updated), ``unchanged`` comes from the diff, ``rejected`` includes quarantined
    input (as in ``run_summary``), ``failed`` and ``parked`` will be retried by later runs.
    """
    outcomes = summary.get("outcomes") or {}
    by_status = summary.get("by_status") or {}
    planned = summary.get("planned") or {}

    def ok(action: str) -> int:
        return int((outcomes.get(action) or {}).get(Status.SUCCESS.value, 0))

    unchanged = int(planned.get("unchanged", 0)) or ok("unchanged")
    return {
        "created": ok("create"),
        "updated": ok("update") + ok("claim"),
        "deleted": ok("delete"),
        "unchanged": unchanged,
        "rejected": int(by_status.get(Status.REJECTED.value, 0)) + int(summary.get("quarantined") or 0),
        "skipped": int(by_status.get(Status.SKIPPED.value, 0)),
        "failed": int(by_status.get(Status.FAILED.value, 0)),
        "parked": int(by_status.get(Status.PARKED.value, 0)),
    }


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _iso(value: datetime | None) -> str | None:
    aware = _aware(value)
    return aware.isoformat() if aware else None


def _duration(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((_aware(end) - _aware(start)).total_seconds(), 1)  # type: ignore[operator]


def _loads(text: str | None) -> dict[str, Any]:
    return json.loads(text) if text else {}


def _summary_of(engine: Engine, row: Any) -> dict[str, Any]:
    """The stored summary of a finished run, or a live one for a run still going."""
    if row.counts:
        return _loads(row.counts)
    return run_summary(engine, integration=row.integration, run_id=row.run_id)


def _run_row(engine: Engine, row: Any) -> dict[str, Any]:
    summary = _summary_of(engine, row)
    return {
        "integration": row.integration,
        "run_id": row.run_id,
        "dag_id": row.dag_id,
        "state": row.state,
        "dry_run": bool(row.dry_run),
        "full_refresh": bool(row.full_refresh),
        "started_at": _iso(row.started_at),
        "finished_at": _iso(row.finished_at),
        "duration_s": _duration(row.started_at, row.finished_at),
        "counts": outcome_counts(summary),
        "api_calls": _loads(row.api_calls),
        "budget_left": _loads(row.budget_left),
        "error": scrub(row.error),
    }


def runs(engine: Engine, integration: str, *, limit: int = 50) -> list[dict[str, Any]]:
    """Return the latest runs of one integration, newest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(sync_run)
            .where(sync_run.c.integration == integration)
            .order_by(sync_run.c.started_at.desc(), sync_run.c.run_id.desc())
            .limit(limit)
        ).all()
    return [_run_row(engine, row) for row in rows]


def overview(engine: Engine, *, now: datetime | None = None) -> list[dict[str, Any]]:
    """Return one entry per integration: last run, counts, API use, records waiting, trend."""
    now = now or datetime.now(UTC)
    since = now - timedelta(days=TREND_DAYS)
    result = []
    for integration in integrations(engine):
        latest = runs(engine, integration, limit=1)
        last = latest[0] if latest else None
        with engine.connect() as conn:
            pending = conn.execute(
                sa.select(sa.func.count())
                .select_from(outbox)
                .where(outbox.c.integration == integration, outbox.c.state == "pending")
            ).scalar_one()
            parked = (
                conn.execute(
                    sa.select(sa.func.count())
                    .select_from(sync_log)
                    .where(
                        sync_log.c.integration == integration,
                        sync_log.c.run_id == last["run_id"],
                        sync_log.c.status == Status.PARKED.value,
                    )
                ).scalar_one()
                if last
                else 0
            )
            last_success = conn.execute(
                sa.select(sa.func.max(sync_run.c.finished_at)).where(
                    sync_run.c.integration == integration, sync_run.c.state.in_(SUCCESS_STATES)
                )
            ).scalar()
        result.append(
            {
                "integration": integration,
                "dag_id": dag_id_for(engine, integration),
                "last_run": last,
                "last_success_at": _iso(last_success),
                "waiting": {"outbox_pending": int(pending), "parked": int(parked)},
                "trend": trend(engine, integration, since=since, days=TREND_DAYS),
            }
        )
    return result


def trend(engine: Engine, integration: str, *, since: datetime, days: int) -> list[dict[str, Any]]:
    """Daily totals of one integration's runs since ``since``: synced, rejected, runs, failed runs."""
    start = since.astimezone(UTC).date()
    daily = {
        start + timedelta(days=n): {"synced": 0, "rejected": 0, "runs": 0, "failed_runs": 0}
        for n in range(days + 1)
    }
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                sync_run.c.integration,
                sync_run.c.run_id,
                sync_run.c.started_at,
                sync_run.c.state,
                sync_run.c.counts,
            ).where(sync_run.c.integration == integration, sync_run.c.started_at >= since)
        ).all()
    for row in rows:
        day: date = _aware(row.started_at).date()  # type: ignore[union-attr]
        if day not in daily:
            continue
        counts = outcome_counts(_loads(row.counts))
        bucket = daily[day]
        bucket["synced"] += counts["created"] + counts["updated"] + counts["deleted"]
        bucket["rejected"] += counts["rejected"]
        bucket["runs"] += 1
        bucket["failed_runs"] += row.state == "failed"
    return [{"day": day.isoformat(), **values} for day, values in sorted(daily.items())]


def run_detail(engine: Engine, integration: str, run_id: str) -> dict[str, Any] | None:
    """Return one run's summary (``run_summary``) with scrubbed text and dashboard counts."""
    with engine.connect() as conn:
        exists = conn.execute(
            sa.select(sync_run.c.run_id).where(
                sync_run.c.integration == integration, sync_run.c.run_id == run_id
            )
        ).first()
    if exists is None:
        return None
    summary = run_summary(engine, integration=integration, run_id=run_id)
    summary["error"] = scrub(summary.get("error"))
    summary["counts"] = outcome_counts(summary)
    summary["duration_s"] = _duration(
        datetime.fromisoformat(summary["started_at"]) if summary.get("started_at") else None,
        datetime.fromisoformat(summary["finished_at"]) if summary.get("finished_at") else None,
    )
    return summary


@dataclass(frozen=True, slots=True)
class RejectedFilter:
    """What the rejected-records list shows.

    Attributes:
        integration: one integration, or all.
        error_code: one code, or all.
        since: logged on or after this day (UTC).
        until: logged on or before this day (UTC).
        still_failing: hide records a later run synced successfully.
        limit: page size.
        offset: rows to skip.
    """

    integration: str | None = None
    error_code: str | None = None
    since: date | None = None
    until: date | None = None
    still_failing: bool = True
    limit: int = 200
    offset: int = 0


def rejected_records(engine: Engine, flt: RejectedFilter) -> dict[str, Any]:
    """Return records that did not sync, newest first.

    Target rejections and failures (``sync_log``) and input refused at staging
    (``quarantine``), with the target's own code and scrubbed message.
    """
    later = sync_log.alias("later")
    where: list[sa.ColumnElement[bool]] = [sync_log.c.status.in_(NOT_SYNCED)]
    q_where: list[sa.ColumnElement[bool]] = []
    if flt.integration:
        where.append(sync_log.c.integration == flt.integration)
        q_where.append(quarantine.c.integration == flt.integration)
    if flt.error_code:
        where.append(sync_log.c.error_code == flt.error_code)
        q_where.append(quarantine.c.code == flt.error_code)
    if flt.since:
        start = datetime.combine(flt.since, datetime.min.time(), tzinfo=UTC)
        where.append(sync_log.c.logged_at >= start)
        q_where.append(quarantine.c.quarantined_at >= start)
    if flt.until:
        end = datetime.combine(flt.until + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
        where.append(sync_log.c.logged_at < end)
        q_where.append(quarantine.c.quarantined_at < end)
    if flt.still_failing:
        synced_later = (
            sa.select(later.c.id)
            .where(
                later.c.integration == sync_log.c.integration,
                later.c.entity == sync_log.c.entity,
                later.c.key == sync_log.c.key,
                later.c.status == Status.SUCCESS.value,
                later.c.logged_at > sync_log.c.logged_at,
            )
            .exists()
        )
        where.append(~synced_later)
    logged = sa.select(
        sa.literal("target").label("source"),
        sync_log.c.integration,
        sync_log.c.run_id,
        sync_log.c.entity,
        sync_log.c.key,
        sync_log.c.action,
        sync_log.c.status,
        sync_log.c.error_code.label("error_code"),
        sync_log.c.field,
        sync_log.c.message,
        sync_log.c.logged_at.label("at"),
    ).where(*where)
    held = sa.select(
        sa.literal("quarantine").label("source"),
        quarantine.c.integration,
        quarantine.c.run_id,
        quarantine.c.entity,
        quarantine.c.key,
        sa.literal("stage").label("action"),
        sa.literal("quarantined").label("status"),
        quarantine.c.code.label("error_code"),
        quarantine.c.field,
        quarantine.c.message,
        quarantine.c.quarantined_at.label("at"),
    ).where(*q_where)
    both = sa.union_all(logged, held).subquery()
    with engine.connect() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(both)).scalar_one()
        rows = conn.execute(
            sa.select(both)
            .order_by(both.c.at.desc(), both.c.integration, both.c.key)
            .limit(flt.limit)
            .offset(flt.offset)
        ).all()
        codes = conn.execute(
            sa.select(sync_log.c.error_code)
            .where(sync_log.c.status.in_(NOT_SYNCED), sync_log.c.error_code.is_not(None))
            .union(sa.select(quarantine.c.code))
        ).scalars()
        code_list = sorted(c for c in codes if c)
    return {
        "total": int(total),
        "error_codes": code_list,
        "records": [
            {
                "source": row.source,
                "integration": row.integration,
                "run_id": row.run_id,
                "entity": row.entity,
                "key": row.key,
                "action": row.action,
                "status": row.status,
                "error_code": row.error_code,
                "field": row.field,
                "message": scrub(row.message),
                "at": _iso(row.at),
            }
            for row in rows
        ],
    }


def record_history(engine: Engine, key: str, *, integration: str | None = None) -> dict[str, Any]:
    """Return every run that touched ``key``: outcomes, quarantine entries and outbox operations."""
    log_where = [sync_log.c.key == key]
    q_where = [quarantine.c.key == key]
    o_where = [outbox.c.record_key == key]
    if integration:
        log_where.append(sync_log.c.integration == integration)
        q_where.append(quarantine.c.integration == integration)
        o_where.append(outbox.c.integration == integration)
    joined = sync_log.outerjoin(
        sync_run,
        sa.and_(sync_run.c.integration == sync_log.c.integration, sync_run.c.run_id == sync_log.c.run_id),
    )
    with engine.connect() as conn:
        outcomes = conn.execute(
            sa.select(
                sync_log, sync_run.c.state.label("run_state"), sync_run.c.started_at.label("run_started")
            )
            .select_from(joined)
            .where(*log_where)
            .order_by(sync_log.c.logged_at.desc(), sync_log.c.id.desc())
            .limit(HISTORY_LIMIT)
        ).all()
        held = conn.execute(
            sa.select(quarantine)
            .where(*q_where)
            .order_by(quarantine.c.quarantined_at.desc())
            .limit(HISTORY_LIMIT)
        ).all()
        ops = conn.execute(
            sa.select(outbox).where(*o_where).order_by(outbox.c.updated_at.desc()).limit(HISTORY_LIMIT)
        ).all()
    return {
        "key": key,
        "outcomes": [
            {
                "integration": r.integration,
                "run_id": r.run_id,
                "run_state": r.run_state,
                "run_started_at": _iso(r.run_started),
                "entity": r.entity,
                "action": r.action,
                "status": r.status,
                "target_id": r.target_id,
                "error_code": r.error_code,
                "field": r.field,
                "message": scrub(r.message),
                "at": _iso(r.logged_at),
            }
            for r in outcomes
        ],
        "quarantined": [
            {
                "integration": r.integration,
                "run_id": r.run_id,
                "entity": r.entity,
                "code": r.code,
                "field": r.field,
                "message": scrub(r.message),
                "at": _iso(r.quarantined_at),
            }
            for r in held
        ],
        "outbox": [
            {
                "integration": r.integration,
                "entity": r.entity,
                "state": r.state,
                "target_id": r.target_id,
                "run_id": r.run_id,
                "attempts": r.attempts,
                "error": r.error,
                "updated_at": _iso(r.updated_at),
            }
            for r in ops
        ],
    }


def api_budgets(engine: Engine) -> list[dict[str, Any]]:
    """Return each API's latest daily window: calls we spent, our limit, what the API reported."""
    with engine.connect() as conn:
        latest = (
            sa.select(quota_usage.c.api, sa.func.max(quota_usage.c.window_start).label("start"))
            .group_by(quota_usage.c.api)
            .subquery()
        )
        rows = conn.execute(
            sa.select(quota_usage).join(
                latest,
                sa.and_(latest.c.api == quota_usage.c.api, latest.c.start == quota_usage.c.window_start),
            )
        ).all()
    by_api: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = by_api.setdefault(row.api, {"api": row.api, "window_start": _iso(row.window_start)})
        entry[row.window] = {"used": int(row.used), "limit": None if row.limit is None else int(row.limit)}
    for entry in by_api.values():
        lefts = [
            w["limit"] - w["used"] for w in (entry.get("daily"), entry.get("reported")) if w and w["limit"]
        ]
        entry["left"] = max(min(lefts), 0) if lefts else None
    return [by_api[api] for api in sorted(by_api)]


def file_imports(engine: Engine, *, limit: int = 200) -> list[dict[str, Any]]:
    """Return the latest file imports (GP Connect workbooks) with their status and row counts."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(file_import)
            .order_by(sa.func.coalesce(file_import.c.started_at, file_import.c.last_modified).desc())
            .limit(limit)
        ).all()
    return [
        {
            "integration": r.integration,
            "file_key": r.file_key,
            "org": r.org,
            "status": r.status,
            "requested_by": r.requested_by,
            "run_id": r.run_id,
            "started_at": _iso(r.started_at),
            "finished_at": _iso(r.finished_at),
            "rows_total": r.rows_total,
            "rows_kept": r.rows_kept,
            "rows_ok": r.rows_ok,
            "rows_rejected": r.rows_rejected,
            "error": scrub(r.error),
        }
        for r in rows
    ]


def mobile_commons_categories(engine: Engine, *, since: datetime | None = None) -> list[dict[str, Any]]:
    """Group Mobile Commons synchronization-report rows by integration and category (error_code)."""
    where = [sync_log.c.integration.like(MOBILE_COMMONS), sync_log.c.error_code.is_not(None)]
    if since is not None:
        where.append(sync_log.c.logged_at >= since)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                sync_log.c.integration,
                sync_log.c.error_code,
                sync_log.c.status,
                sa.func.count().label("records"),
                sa.func.max(sync_log.c.logged_at).label("last_seen"),
            )
            .where(*where)
            .group_by(sync_log.c.integration, sync_log.c.error_code, sync_log.c.status)
            .order_by(sync_log.c.integration, sa.func.count().desc(), sync_log.c.error_code)
        ).all()
    return [
        {
            "integration": r.integration,
            "category": r.error_code,
            "status": r.status,
            "records": int(r.records),
            "last_seen": _iso(r.last_seen),
        }
        for r in rows
    ]

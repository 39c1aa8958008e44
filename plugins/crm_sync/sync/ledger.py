"""The ledger: per-record outcomes (sync_log), the sync state they move, and run summaries."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from crm_sync.exceptions import FatalError
from crm_sync.sync.diff import diff_counts
from crm_sync.sync.records import Action, Outcome, Status
from crm_sync.sync.schema import begin_write, quarantine, staged_record, sync_log, sync_run, sync_state
from crm_sync.sync.staging import IN_CHUNK

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

__all__ = [
    "OutcomeCounts",
    "apply_outcomes",
    "check_reject_ratio",
    "finish_run",
    "run_summary",
    "start_run",
]

log = logging.getLogger(__name__)

MESSAGE_LENGTH = 1000
"""Longer outcome messages are cut: the log is for codes and reasons, not response dumps."""
TOP_ERRORS = 10
SAMPLE_KEYS = 5

_STATE_ACTIONS = {Action.CREATE, Action.UPDATE, Action.UNCHANGED, Action.CLAIM}


@dataclass(frozen=True, slots=True)
class OutcomeCounts:
    """How many outcomes were recorded, by status."""

    success: int = 0
    rejected: int = 0
    skipped: int = 0
    failed: int = 0
    parked: int = 0

    @property
    def total(self) -> int:
        """All outcomes recorded."""
        return self.success + self.rejected + self.skipped + self.failed + self.parked

    def __add__(self, other: OutcomeCounts) -> OutcomeCounts:
        return OutcomeCounts(**{name: getattr(self, name) + getattr(other, name) for name in _STATUSES})

    def as_dict(self) -> dict[str, int]:
        """Return the counts as a JSON-ready dict."""
        return asdict(self)


_STATUSES = tuple(status.value for status in Status)


def apply_outcomes(
    engine: Engine,
    *,
    run_id: str,
    integration: str,
    entity: str,
    outcomes: Iterable[Outcome],
    chunk_size: int = 1000,
) -> OutcomeCounts:
    """Record outcomes in ``sync_log`` and move ``sync_state`` for the successes.

    Each chunk is one transaction holding its log rows and its state changes: a success of
    a create or update upserts the state with the record's hash (from the outcome, else
    from this run's staging), target id and run; a successful delete removes the state row.
    Rejected, failed, parked and skipped records leave the state alone, so the next run
    tries them again. Applying the same outcomes twice (a retried task) leaves the same log
    and state: a run keeps one log row per record, the latest.

    Returns:
        The counts by status.
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    totals = OutcomeCounts()
    for chunk in _batches(outcomes, chunk_size):
        with begin_write(engine) as conn:
            totals += _apply_chunk(conn, run_id, integration, entity, chunk)
    log.info(
        "recorded %s %s outcomes for %s run %s: %s",
        totals.total,
        entity,
        integration,
        run_id,
        totals.as_dict(),
    )
    return totals


def _batches(outcomes: Iterable[Outcome], size: int) -> Iterator[list[Outcome]]:
    iterator = iter(outcomes)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _apply_chunk(
    conn: Connection, run_id: str, integration: str, entity: str, chunk: Sequence[Outcome]
) -> OutcomeCounts:
    now = datetime.now(UTC)
    latest = {outcome.key: outcome for outcome in chunk}  # a key reported twice: the last one counts
    keys = list(latest)
    for part in _parts(keys):
        conn.execute(
            sync_log.delete().where(
                sync_log.c.integration == integration,
                sync_log.c.key.in_(part),
                sync_log.c.run_id == run_id,
                sync_log.c.entity == entity,
            )
        )
    conn.execute(
        sync_log.insert(),
        [
            {
                "run_id": run_id,
                "integration": integration,
                "entity": entity,
                "key": outcome.key,
                "action": Action(outcome.action).value,
                "status": Status(outcome.status).value,
                "target_id": outcome.target_id,
                "error_code": outcome.error_code,
                "message": outcome.message[:MESSAGE_LENGTH] if outcome.message else outcome.message,
                "field": outcome.field,
                "logged_at": now,
            }
            for outcome in latest.values()
        ],
    )
    successes = [outcome for outcome in latest.values() if outcome.status == Status.SUCCESS]
    upserts = [outcome for outcome in successes if outcome.action in _STATE_ACTIONS]
    deletes = [outcome.key for outcome in successes if outcome.action == Action.DELETE]
    if upserts:
        hashes = _staged_hashes(
            conn, run_id, integration, entity, [o.key for o in upserts if o.row_hash is None]
        )
        _upsert_state(
            conn,
            [
                {
                    "integration": integration,
                    "entity": entity,
                    "key": outcome.key,
                    "row_hash": outcome.row_hash or hashes.get(outcome.key),
                    "target_id": outcome.target_id,
                    "synced_at": now,
                    "run_id": run_id,
                }
                for outcome in upserts
            ],
        )
    for part in _parts(deletes):
        conn.execute(
            sync_state.delete().where(
                sync_state.c.integration == integration,
                sync_state.c.entity == entity,
                sync_state.c.key.in_(part),
            )
        )
    by_status = {status: 0 for status in _STATUSES}
    for outcome in latest.values():
        by_status[Status(outcome.status).value] += 1
    return OutcomeCounts(**by_status)


def _parts(keys: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(keys), IN_CHUNK):
        yield keys[start : start + IN_CHUNK]


def _staged_hashes(
    conn: Connection, run_id: str, integration: str, entity: str, keys: Sequence[str]
) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for part in _parts(keys):
        found.update(
            conn.execute(
                sa.select(staged_record.c.key, staged_record.c.row_hash).where(
                    staged_record.c.run_id == run_id,
                    staged_record.c.integration == integration,
                    staged_record.c.entity == entity,
                    staged_record.c.key.in_(part),
                )
            ).all()
        )
    return found


def _upsert_state(conn: Connection, rows: list[dict[str, Any]]) -> None:
    dialect = conn.dialect.name
    if dialect in {"sqlite", "postgresql"}:
        insert = (sqlite.insert if dialect == "sqlite" else postgresql.insert)(sync_state)
        excluded = insert.excluded
        conn.execute(
            insert.on_conflict_do_update(
                index_elements=[sync_state.c.integration, sync_state.c.entity, sync_state.c.key],
                set_={
                    "row_hash": excluded.row_hash,
                    # An update the API answered without an id keeps the id we knew.
                    "target_id": sa.func.coalesce(excluded.target_id, sync_state.c.target_id),
                    "synced_at": excluded.synced_at,
                    "run_id": excluded.run_id,
                },
            ),
            rows,
        )
        return
    # Other dialects (SQL Server): delete and insert in the caller's transaction.
    first = rows[0]
    known: dict[str, str | None] = {}
    for part in _parts([row["key"] for row in rows]):
        scope = (
            sync_state.c.integration == first["integration"],
            sync_state.c.entity == first["entity"],
            sync_state.c.key.in_(part),
        )
        known.update(conn.execute(sa.select(sync_state.c.key, sync_state.c.target_id).where(*scope)).all())
        conn.execute(sync_state.delete().where(*scope))
    conn.execute(
        sync_state.insert(), [{**row, "target_id": row["target_id"] or known.get(row["key"])} for row in rows]
    )


def start_run(
    engine: Engine, *, integration: str, run_id: str, dag_id: str | None, dry_run: bool, full_refresh: bool
) -> None:
    """Record that a run started (again, for a retried task: its row is reset to running)."""
    values = {
        "dag_id": dag_id,
        "started_at": datetime.now(UTC),
        "finished_at": None,
        "state": "running",
        "dry_run": dry_run,
        "full_refresh": full_refresh,
        "error": None,
    }
    pk = (sync_run.c.integration == integration, sync_run.c.run_id == run_id)
    with begin_write(engine) as conn:
        exists = conn.execute(sa.select(sync_run.c.run_id).where(*pk)).first() is not None
        if exists:
            values.pop("started_at")
            conn.execute(sync_run.update().where(*pk).values(**values))
        else:
            conn.execute(sync_run.insert().values(integration=integration, run_id=run_id, **values))


def finish_run(
    engine: Engine,
    *,
    integration: str,
    run_id: str,
    state: str,
    api_calls: Mapping[str, int],
    budget_left: Mapping[str, int | None],
    error: str | None = None,
) -> dict[str, Any]:
    """Close a run: store its state, counts, API calls and budget left.

    Returns:
        The run summary (see :func:`run_summary`).
    """
    summary = run_summary(engine, integration=integration, run_id=run_id)
    counts = {key: summary[key] for key in ("planned", "outcomes", "by_status", "quarantined", "errors")}
    values = {
        "finished_at": datetime.now(UTC),
        "state": state,
        "counts": json.dumps(counts, sort_keys=True),
        "api_calls": json.dumps(dict(api_calls), sort_keys=True),
        "budget_left": json.dumps(dict(budget_left), sort_keys=True),
        "error": error[:MESSAGE_LENGTH] if error else None,
    }
    pk = (sync_run.c.integration == integration, sync_run.c.run_id == run_id)
    with begin_write(engine) as conn:
        if not conn.execute(sync_run.update().where(*pk).values(**values)).rowcount:
            conn.execute(
                sync_run.insert().values(
                    integration=integration, run_id=run_id, dry_run=False, full_refresh=False, **values
                )
            )
    summary.update(
        state=state,
        finished_at=values["finished_at"].isoformat(),
        api_calls=dict(api_calls),
        budget_left=dict(budget_left),
        error=values["error"],
    )
    return summary


def run_summary(engine: Engine, *, integration: str, run_id: str) -> dict[str, Any]:
    """Summarise one run: small and JSON-ready (it goes to XCom), with keys but no field values.

    Returns:
        ``planned`` (the diff's counts), ``outcomes`` (action -> status -> count),
        ``by_status``, ``quarantined``, ``attempted`` and ``rejected`` (both including
        quarantined input), ``errors`` (the most frequent codes with up to five sample keys
        each), ``api_calls``, ``budget_left`` and the run's own fields.
    """
    in_log = (sync_log.c.integration == integration, sync_log.c.run_id == run_id)
    in_quarantine = (quarantine.c.integration == integration, quarantine.c.run_id == run_id)
    with engine.connect() as conn:
        run = conn.execute(
            sa.select(sync_run).where(sync_run.c.integration == integration, sync_run.c.run_id == run_id)
        ).first()
        outcomes: dict[str, dict[str, int]] = {}
        by_status = {status: 0 for status in _STATUSES}
        for action, status, count in conn.execute(
            sa.select(sync_log.c.action, sync_log.c.status, sa.func.count())
            .where(*in_log)
            .group_by(sync_log.c.action, sync_log.c.status)
        ):
            outcomes.setdefault(action, {})[status] = int(count)
            by_status[status] = by_status.get(status, 0) + int(count)
        quarantined = int(
            conn.execute(
                sa.select(sa.func.count()).select_from(quarantine).where(*in_quarantine)
            ).scalar_one()
        )
        errors = _top_errors(
            conn, sync_log, sync_log.c.error_code, (*in_log, sync_log.c.status != Status.SUCCESS.value)
        )
        errors += [
            {**error, "source": "quarantine"}
            for error in _top_errors(conn, quarantine, quarantine.c.code, in_quarantine)
        ]
    errors.sort(key=lambda error: (-error["count"], error["code"]))
    planned = diff_counts(engine, run_id=run_id, integration=integration)
    attempted = by_status["success"] + by_status["rejected"] + by_status["failed"] + quarantined
    return {
        "integration": integration,
        "run_id": run_id,
        "dag_id": run.dag_id if run else None,
        "state": run.state if run else None,
        "dry_run": bool(run.dry_run) if run else None,
        "full_refresh": bool(run.full_refresh) if run else None,
        "started_at": _iso(run.started_at) if run else None,
        "finished_at": _iso(run.finished_at) if run else None,
        "planned": planned.as_dict() if planned else None,
        "outcomes": outcomes,
        "by_status": by_status,
        "quarantined": quarantined,
        "attempted": attempted,
        "rejected": by_status["rejected"] + quarantined,
        "errors": errors[:TOP_ERRORS],
        "api_calls": json.loads(run.api_calls) if run and run.api_calls else {},
        "budget_left": json.loads(run.budget_left) if run and run.budget_left else {},
        "error": run.error if run else None,
    }


def _top_errors(
    conn: Connection, table: sa.Table, code: sa.Column[Any], where: Sequence[sa.ColumnElement[bool]]
) -> list[dict[str, Any]]:
    counted = conn.execute(
        sa.select(code, sa.func.count())
        .where(*where, code.is_not(None))
        .group_by(code)
        .order_by(sa.func.count().desc(), code)
        .limit(TOP_ERRORS)
    ).all()
    return [
        {
            "code": error_code,
            "count": int(count),
            "sample_keys": list(
                conn.execute(
                    sa.select(table.c.key)
                    .where(*where, code == error_code, table.c.key.is_not(None))
                    .order_by(table.c.key)
                    .limit(SAMPLE_KEYS)
                ).scalars()
            ),
        }
        for error_code, count in counted
    ]


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def check_reject_ratio(summary: Mapping[str, Any], max_reject_ratio: float) -> None:
    """Fail the run when rejected records (including quarantined input) exceed the ratio.

    Raises:
        FatalError: rejected / attempted is above ``max_reject_ratio``.
    """
    if not 0 <= max_reject_ratio <= 1:
        raise ValueError("max_reject_ratio must be between 0 and 1")
    attempted = int(summary.get("attempted") or 0)
    rejected = int(summary.get("rejected") or 0)
    if attempted and rejected / attempted > max_reject_ratio:
        codes = ", ".join(f"{error['code']} x{error['count']}" for error in summary.get("errors", [])[:3])
        raise FatalError(
            f"{summary.get('integration')} run {summary.get('run_id')}: {rejected} of {attempted} records "
            f"rejected ({rejected / attempted:.1%}), above max_reject_ratio {max_reject_ratio:.1%}"
            + (f"; top errors: {codes}" if codes else "")
        )

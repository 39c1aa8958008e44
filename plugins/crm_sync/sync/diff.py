"""Diff a run's staged records against the sync state (or a fresh target snapshot), in SQL.

Everything is set-based: a handful of statements decide the action of every staged row,
whatever the row count; Python only reads the changes back, a page at a time.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

import sqlalchemy as sa

from crm_sync.exceptions import FatalError
from crm_sync.sync.records import Action, Change
from crm_sync.sync.schema import begin_write, snapshot_record, staged_diff, staged_record, sync_state
from crm_sync.sync.staging import IN_CHUNK, insert_first_wins

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

__all__ = ["DiffCounts", "compute_diff", "diff_counts", "iter_changes", "stage_snapshot"]

log = logging.getLogger(__name__)

CHANGE_ACTIONS: tuple[str, ...] = (Action.CREATE, Action.UPDATE, Action.DELETE)


@dataclass(frozen=True, slots=True)
class DiffCounts:
    """How many staged records the diff found in each action."""

    create: int = 0
    update: int = 0
    delete: int = 0
    unchanged: int = 0
    skip: int = 0

    @property
    def changes(self) -> int:
        """Records the push step has to write."""
        return self.create + self.update + self.delete

    def as_dict(self) -> dict[str, int]:
        """Return the counts as a JSON-ready dict."""
        return asdict(self)


def compute_diff(
    engine: Engine,
    *,
    run_id: str,
    integration: str,
    entity: str,
    against: Literal["state", "snapshot"] = "state",
    detect_deletes: bool = True,
    keys: Collection[str] | None = None,
    max_delete_ratio: float | None = None,
) -> DiffCounts:
    """Decide the action of every staged record of one run and entity.

    A staged key absent from the baseline is a ``create``; present with another hash, an
    ``update``; present with the same hash, unchanged. Baseline keys absent from this run's
    staging become ``delete`` rows (payload NULL) when ``detect_deletes``. Only changed rows
    are written: unchanged rows keep ``action`` NULL, which after a diff (recorded in
    ``staged_diff``) means unchanged. Rewriting every row would dominate the diff's cost
    (several seconds per million rows on PostgreSQL) for rows nobody reads again. Running it
    again recomputes everything.

    Args:
        engine: the staging engine.
        run_id: the run whose staged records to diff.
        integration: the integration name.
        entity: the entity name.
        against: ``state`` (what the last successful syncs wrote) or ``snapshot`` (this run's
            fresh read of the target, from :func:`stage_snapshot`: repairs drift).
        detect_deletes: infer deletes for baseline keys absent from staging.
        keys: diff only these keys; other staged rows get ``skip``, and deletes are never
            inferred (the staging is not a full extract).
        max_delete_ratio: refuse (FatalError, nothing written) when inferred deletes exceed
            this share of the baseline: an empty or truncated extract must not wipe the target.

    Returns:
        The counts per action.
    """
    if against not in {"state", "snapshot"}:
        raise ValueError("against must be 'state' or 'snapshot'")
    staged = staged_record
    base = sync_state if against == "state" else snapshot_record
    in_scope = (staged.c.run_id == run_id, staged.c.integration == integration, staged.c.entity == entity)
    base_scope = [base.c.integration == integration, base.c.entity == entity]
    if against == "snapshot":
        base_scope.append(base.c.run_id == run_id)
    same_key = sa.exists().where(*base_scope, base.c.key == staged.c.key)
    same_hash = sa.exists().where(
        *base_scope, base.c.key == staged.c.key, base.c.row_hash == staged.c.row_hash
    )
    changed = sa.update(staged).values(
        action=sa.case((same_key, Action.UPDATE.value), else_=Action.CREATE.value)
    )
    marked = staged.c.action.is_not(None)  # matches the partial index ix_staged_record_marked
    with begin_write(engine) as conn:
        if conn.dialect.name == "postgresql":
            # JIT-compiling these one-shot statements costs more than it saves.
            conn.execute(sa.text("SET LOCAL jit = off"))
            # Freshly loaded tables have no statistics until autovacuum gets to them; without
            # them the planner picks nested loops over a million rows (minutes, not seconds).
            conn.execute(sa.text(f"ANALYZE {staged.name}, {base.name}"))
        if _diffed(conn, run_id, integration, entity):
            conn.execute(staged.delete().where(*in_scope, marked, staged.c.payload.is_(None)))
            conn.execute(sa.update(staged).where(*in_scope, marked).values(action=None))
        if keys is None:
            conn.execute(changed.where(*in_scope, ~same_hash))
            if detect_deletes:
                _insert_deletes(conn, run_id, base, base_scope)
        else:
            wanted = list(dict.fromkeys(keys))
            only = staged.c.key.in_(sa.bindparam("keys", expanding=True))
            conn.execute(sa.update(staged).where(*in_scope).values(action=Action.SKIP.value))
            for start in range(0, len(wanted), IN_CHUNK):
                batch = {"keys": wanted[start : start + IN_CHUNK]}
                conn.execute(sa.update(staged).where(*in_scope, only).values(action=None), batch)
                conn.execute(changed.where(*in_scope, only, ~same_hash), batch)
        tally = dict(
            conn.execute(
                sa.select(staged.c.action, sa.func.count()).where(*in_scope, marked).group_by(staged.c.action)
            ).all()
        )
        total = conn.execute(sa.select(sa.func.count()).select_from(staged).where(*in_scope)).scalar_one()
        counts = DiffCounts(
            create=tally.get(Action.CREATE.value, 0),
            update=tally.get(Action.UPDATE.value, 0),
            delete=tally.get(Action.DELETE.value, 0),
            unchanged=total - sum(tally.values()),
            skip=tally.get(Action.SKIP.value, 0),
        )
        if max_delete_ratio is not None and counts.delete:
            baseline = conn.execute(
                sa.select(sa.func.count()).select_from(base).where(*base_scope)
            ).scalar_one()
            if counts.delete > max_delete_ratio * baseline:
                raise FatalError(
                    f"{integration} run {run_id}: {counts.delete} of {baseline} {entity} records would be "
                    f"deleted, above max_delete_ratio {max_delete_ratio:.0%}; check the extract"
                )
        _record_diff(conn, run_id, integration, entity, against, counts)
    log.info("diff %s %s run %s against %s: %s", integration, entity, run_id, against, counts.as_dict())
    return counts


def _diffed(conn: Connection, run_id: str, integration: str, entity: str) -> bool:
    found = conn.execute(
        sa.select(staged_diff.c.run_id).where(
            staged_diff.c.run_id == run_id,
            staged_diff.c.integration == integration,
            staged_diff.c.entity == entity,
        )
    ).first()
    return found is not None


def _insert_deletes(
    conn: Connection, run_id: str, base: sa.Table, base_scope: Sequence[sa.ColumnElement[bool]]
) -> None:
    present = staged_record.alias("present")
    absent = ~sa.exists().where(
        present.c.run_id == run_id,
        present.c.integration == base.c.integration,
        present.c.entity == base.c.entity,
        present.c.key == base.c.key,
    )
    rows = sa.select(
        sa.literal(run_id, sa.String()),
        base.c.integration,
        base.c.entity,
        base.c.key,
        sa.null(),
        sa.null(),
        sa.literal(Action.DELETE.value, sa.String()),
    ).where(*base_scope, absent)
    columns = ["run_id", "integration", "entity", "key", "payload", "row_hash", "action"]
    conn.execute(staged_record.insert().from_select(columns, rows))


def _record_diff(
    conn: Connection, run_id: str, integration: str, entity: str, against: str, counts: DiffCounts
) -> None:
    scope = {"run_id": run_id, "integration": integration, "entity": entity}
    conn.execute(staged_diff.delete().where(*(staged_diff.c[name] == value for name, value in scope.items())))
    conn.execute(
        staged_diff.insert().values(
            **scope,
            against=against,
            creates=counts.create,
            updates=counts.update,
            deletes=counts.delete,
            unchanged=counts.unchanged,
            skipped=counts.skip,
            diffed_at=datetime.now(UTC),
        )
    )


def diff_counts(
    engine: Engine, *, run_id: str, integration: str, entity: str | None = None
) -> DiffCounts | None:
    """Return the counts of the last diff of a run (summed over entities when ``entity`` is None).

    Returns:
        None when the run (or entity) has not been diffed.
    """
    query = sa.select(
        sa.func.count(),
        *(sa.func.coalesce(sa.func.sum(staged_diff.c[name]), 0) for name in _COUNT_COLUMNS.values()),
    ).where(staged_diff.c.run_id == run_id, staged_diff.c.integration == integration)
    if entity is not None:
        query = query.where(staged_diff.c.entity == entity)
    with engine.connect() as conn:
        found, *values = conn.execute(query).one()
    if not found:
        return None
    return DiffCounts(**{name: int(value) for name, value in zip(_COUNT_COLUMNS, values, strict=True)})


_COUNT_COLUMNS = {
    "create": "creates",
    "update": "updates",
    "delete": "deletes",
    "unchanged": "unchanged",
    "skip": "skipped",
}


def iter_changes(
    engine: Engine,
    *,
    run_id: str,
    integration: str,
    entity: str,
    actions: Iterable[str] = CHANGE_ACTIONS,
    chunk_size: int = 2000,
) -> Iterator[list[Change]]:
    """Yield the run's changes in pages of at most ``chunk_size``, ordered by key.

    Pages are read by keyset pagination (``key > last key``), each in its own short
    transaction, so a long push never holds the database. Updates and deletes carry the
    target id of this run's snapshot when there is one, else of the sync state.

    Raises:
        FatalError: the run's entity has not been diffed (a wiring error: nothing to push
            would otherwise pass silently).
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    wanted = {Action(action).value for action in actions}
    if diff_counts(engine, run_id=run_id, integration=integration, entity=entity) is None:
        raise FatalError(
            f"{integration} run {run_id}: {entity} records were not diffed; run compute_diff first"
        )
    staged, state, snap = staged_record, sync_state, snapshot_record
    selected: sa.ColumnElement[bool] = sa.and_(
        staged.c.action.is_not(None), staged.c.action.in_(sorted(wanted - {Action.UNCHANGED.value}))
    )
    if Action.UNCHANGED.value in wanted:
        selected = sa.or_(staged.c.action.is_(None), staged.c.action.in_(sorted(wanted)))
    page = (
        sa.select(
            staged.c.key,
            staged.c.action,
            staged.c.payload,
            staged.c.row_hash,
            sa.func.coalesce(snap.c.target_id, state.c.target_id),
        )
        .select_from(
            staged.outerjoin(
                state,
                sa.and_(
                    state.c.integration == staged.c.integration,
                    state.c.entity == staged.c.entity,
                    state.c.key == staged.c.key,
                ),
            ).outerjoin(
                snap,
                sa.and_(
                    snap.c.run_id == staged.c.run_id,
                    snap.c.integration == staged.c.integration,
                    snap.c.entity == staged.c.entity,
                    snap.c.key == staged.c.key,
                ),
            )
        )
        .where(
            staged.c.run_id == run_id,
            staged.c.integration == integration,
            staged.c.entity == entity,
            selected,
            staged.c.key > sa.bindparam("after"),
        )
        .order_by(staged.c.key)
        .limit(chunk_size)
    )
    after = ""  # every staged key is non-empty, and '' sorts first under any collation
    while True:
        with engine.connect() as conn:
            rows = conn.execute(page, {"after": after}).all()
        if not rows:
            return
        yield [
            Change(
                key=key,
                action=Action(action or Action.UNCHANGED),
                payload=json.loads(payload) if payload is not None else None,
                row_hash=row_hash,
                target_id=None if action == Action.CREATE else target_id,
            )
            for key, action, payload, row_hash, target_id in rows
        ]
        if len(rows) < chunk_size:
            return
        after = rows[-1][0]


def stage_snapshot(
    engine: Engine,
    *,
    run_id: str,
    integration: str,
    entity: str,
    rows: Iterable[tuple[str, str, str | None]],
    chunk_size: int = 5000,
) -> int:
    """Store a fresh read of the target as ``(key, row_hash, target_id)`` for a snapshot diff.

    Callers hash each target record with :func:`crm_sync.sync.hashing.row_hash` over the
    same mapped fields as the staged records. Storing the same run and entity again replaces
    the earlier snapshot. A key seen twice (duplicates in the target) keeps its first row;
    the others are counted in the log.

    Returns:
        The number of snapshot rows stored.
    """
    scope = {"run_id": run_id, "integration": integration, "entity": entity}
    with begin_write(engine) as conn:
        conn.execute(
            snapshot_record.delete().where(
                *(snapshot_record.c[name] == value for name, value in scope.items())
            )
        )
    stored = duplicates = 0
    chunk: dict[str, tuple[str, str, str | None]] = {}
    for key, digest, target_id in rows:
        if key in chunk:
            duplicates += 1
            continue
        chunk[key] = (key, digest, target_id)
        if len(chunk) >= chunk_size:
            skipped = insert_first_wins(engine, snapshot_record, scope, ("row_hash", "target_id"), chunk)
            stored, duplicates, chunk = stored + len(chunk) - len(skipped), duplicates + len(skipped), {}
    if chunk:
        skipped = insert_first_wins(engine, snapshot_record, scope, ("row_hash", "target_id"), chunk)
        stored, duplicates = stored + len(chunk) - len(skipped), duplicates + len(skipped)
    if duplicates:
        log.warning(
            "%s %s snapshot for run %s: %d duplicate keys ignored", integration, entity, run_id, duplicates
        )
    return stored

"""Bad input that never reached staging: its error, never its values."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa

from crm_sync.exceptions import RecordRejected
from crm_sync.sync.schema import begin_write, quarantine, sync_log

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

FINAL_STATUSES = ("success", "rejected", "skipped")
"""Outcomes a retried try must not redo in the same run (``failed`` and ``parked`` are retried)."""


def quarantine_rejections(
    engine: Engine, *, run_id: str, integration: str, entity: str, problems: Iterable[RecordRejected]
) -> int:
    """Store rejections raised while shaping source records (the key, field, code and reason)."""
    now = datetime.now(UTC)
    rows = [
        {
            "run_id": run_id,
            "integration": integration,
            "entity": entity,
            "key": problem.key,
            "field": problem.field,
            "code": problem.code,
            "message": problem.reason[:1000],
            "quarantined_at": now,
        }
        for problem in problems
    ]
    if rows:
        with begin_write(engine) as conn:
            conn.execute(quarantine.insert(), rows)
    return len(rows)


def keys_with_final_outcome(
    engine: Engine, *, run_id: str, integration: str, entity: str, keys: Sequence[str]
) -> set[str]:
    """Which of ``keys`` already have a final outcome in this run (a retried try resumes)."""
    if not keys:
        return set()
    query = sa.select(sync_log.c.key).where(
        sync_log.c.run_id == run_id,
        sync_log.c.integration == integration,
        sync_log.c.entity == entity,
        sync_log.c.status.in_(FINAL_STATUSES),
        sync_log.c.key.in_(sa.bindparam("keys", expanding=True)),
    )
    found: set[str] = set()
    with engine.connect() as conn:
        # SQL Server takes at most 2,100 parameters per statement.
        for start in range(0, len(keys), 2000):
            found.update(conn.execute(query, {"keys": list(keys[start : start + 2000])}).scalars())
    return found


def split_rejections(records: Iterable[object], sink: list[RecordRejected]) -> Iterator[object]:
    """Yield records, diverting RecordRejected items an extract yielded into ``sink``."""
    for record in records:
        if isinstance(record, RecordRejected):
            sink.append(record)
            continue
        yield record

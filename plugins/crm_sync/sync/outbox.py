"""Idempotency keys for APIs without upsert (Maxio, Pipedrive, flow starts).

Before a non-idempotent call, claim its operation key. A new claim means "go ahead and
create". An existing ``pending`` entry means a previous attempt may have reached the API
(a crash or timeout after the request left): look the remote object up by the key before
creating it again. A ``done`` entry carries the target id: nothing to do. The primary key
decides between racing workers, never a read followed by a write.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from crm_sync.exceptions import FatalError
from crm_sync.sync.schema import CODE, OP_KEY, begin_write, outbox
from crm_sync.sync.staging import is_integrity_error

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.engine import Connection, Engine

__all__ = ["Outbox", "OutboxEntry", "OutboxState"]

log = logging.getLogger(__name__)


class OutboxState(StrEnum):
    """Where an operation stands."""

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One operation key and what is known about its call."""

    integration: str
    op_key: str
    entity: str
    record_key: str
    state: OutboxState
    target_id: str | None
    run_id: str | None
    attempts: int
    error: str | None
    is_new: bool = False
    """True only for the claim that created the entry: the call has never been attempted."""
    created_at: datetime | None = None
    """When the operation was first claimed (a remote object made by it is younger)."""

    @property
    def is_done(self) -> bool:
        """The call succeeded earlier; ``target_id`` names the remote object."""
        return self.state == OutboxState.DONE


class Outbox:
    """The outbox of one integration."""

    def __init__(self, engine: Engine, integration: str) -> None:
        self._engine = engine
        self.integration = integration

    @staticmethod
    def op_key(*parts: object) -> str:
        """Return a deterministic key for an operation, e.g. ``op_key("subscription", opp_id)``.

        Parts are compared as strings, so ``op_key("a", 1) == op_key("a", "1")``.
        """
        if not parts:
            raise ValueError("op_key needs at least one part")
        text = json.dumps([str(part) for part in parts], ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def claim(self, op_key: str, *, entity: str, record_key: str, run_id: str | None) -> OutboxEntry:
        """Claim an operation before calling the API.

        Returns:
            A new pending entry (``is_new``), or the existing one. An existing entry that is
            not done is set back to pending with one more attempt counted.
        """
        if not op_key or len(op_key) > OP_KEY:
            raise ValueError(f"op_key must be 1 to {OP_KEY} characters (use Outbox.op_key)")
        now = datetime.now(UTC)
        try:
            with begin_write(self._engine) as conn:
                conn.execute(outbox.insert().values(**self._new_row(op_key, entity, record_key, run_id, now)))
            return OutboxEntry(
                integration=self.integration,
                op_key=op_key,
                entity=entity,
                record_key=record_key,
                state=OutboxState.PENDING,
                target_id=None,
                run_id=run_id,
                attempts=1,
                error=None,
                is_new=True,
            )
        except sa.exc.DBAPIError as exc:
            if not is_integrity_error(self._engine, exc):
                raise
        with begin_write(self._engine) as conn:
            self._attempt_again(conn, [op_key], run_id, now)
            entry = self._read(conn, op_key)
        if entry is None:  # pragma: no cover - rows are never deleted by this class
            raise FatalError(f"outbox entry {op_key} of {self.integration} vanished while claimed")
        log.info(
            "outbox %s %s: existing %s entry, attempt %d",
            self.integration,
            op_key,
            entry.state,
            entry.attempts,
        )
        return entry

    def claim_many(
        self, claims: Sequence[tuple[str, str]], *, entity: str, run_id: str | None
    ) -> dict[str, OutboxEntry]:
        """:meth:`claim` for many ``(op_key, record_key)`` pairs in one transaction.

        Returns every entry by op key. Should another worker claim one of the keys in between
        (the primary key refuses the insert), each is claimed on its own instead.
        """
        wanted = dict(claims)
        if any(not k or len(k) > OP_KEY for k in wanted):
            raise ValueError(f"op_key must be 1 to {OP_KEY} characters (use Outbox.op_key)")
        if not wanted:
            return {}
        now = datetime.now(UTC)
        keys = sorted(wanted)
        try:
            with begin_write(self._engine) as conn:
                existing = {e.op_key: e for e in self._read_many(conn, keys)}
                new = [k for k in keys if k not in existing]
                if new:
                    rows = [self._new_row(k, entity, wanted[k], run_id, now) for k in new]
                    conn.execute(outbox.insert(), rows)
                again = [k for k, e in existing.items() if not e.is_done]
                if again:
                    self._attempt_again(conn, again, run_id, now)
                entries = {e.op_key: e for e in self._read_many(conn, keys)}
        except sa.exc.DBAPIError as exc:
            if not is_integrity_error(self._engine, exc):
                raise
            return {k: self.claim(k, entity=entity, record_key=wanted[k], run_id=run_id) for k in keys}
        fresh = set(new)
        return {k: replace(e, is_new=True) if k in fresh else e for k, e in entries.items()}

    def complete(self, op_key: str, target_id: str) -> None:
        """Mark the operation done, with the id of the object it created."""
        self.complete_many([op_key], target_id)

    def complete_many(self, op_keys: Sequence[str], target_id: str) -> None:
        """Mark operations done by one call (e.g. one flow start for many contacts), in one statement."""
        self._update(op_keys, state=OutboxState.DONE.value, target_id=target_id, error=None)

    def fail(self, op_key: str, error_code: str) -> None:
        """Mark the operation failed with a code (never a message carrying data)."""
        self.fail_many([op_key], error_code)

    def fail_many(self, op_keys: Sequence[str], error_code: str) -> None:
        """Mark operations failed with one code, in one statement."""
        self._update(op_keys, state=OutboxState.FAILED.value, error=error_code[:CODE])

    def entries(self, op_keys: Sequence[str]) -> dict[str, OutboxEntry]:
        """The entries of the given operation keys that exist, by op key (one query)."""
        if not op_keys:
            return {}
        with self._engine.connect() as conn:
            return {e.op_key: e for e in self._read_many(conn, op_keys)}

    def get(self, op_key: str) -> OutboxEntry | None:
        """Return the entry of an operation key, if any."""
        with self._engine.connect() as conn:
            return self._read(conn, op_key)

    def pending(self, entity: str | None = None) -> list[OutboxEntry]:
        """Return the entries still pending (attempted, outcome unknown), oldest first."""
        query = sa.select(outbox).where(
            outbox.c.integration == self.integration, outbox.c.state == OutboxState.PENDING.value
        )
        if entity is not None:
            query = query.where(outbox.c.entity == entity)
        with self._engine.connect() as conn:
            rows = conn.execute(query.order_by(outbox.c.created_at, outbox.c.op_key)).mappings().all()
        return [_entry(row) for row in rows]

    def _read(self, conn: Connection, op_key: str) -> OutboxEntry | None:
        return next(iter(self._read_many(conn, [op_key])), None)

    def _new_row(
        self, op_key: str, entity: str, record_key: str, run_id: str | None, now: datetime
    ) -> dict[str, Any]:
        """A first claim: pending, one attempt."""
        return {
            "integration": self.integration,
            "op_key": op_key,
            "entity": entity,
            "record_key": record_key,
            "state": OutboxState.PENDING.value,
            "run_id": run_id,
            "attempts": 1,
            "created_at": now,
            "updated_at": now,
        }

    def _attempt_again(
        self, conn: Connection, op_keys: Sequence[str], run_id: str | None, now: datetime
    ) -> None:
        """Claims of existing entries: those not done are pending again, one more attempt counted."""
        conn.execute(
            outbox.update()
            .where(*self._in(op_keys), outbox.c.state != OutboxState.DONE.value)
            .values(
                state=OutboxState.PENDING.value, attempts=outbox.c.attempts + 1, run_id=run_id, updated_at=now
            )
        )

    def _in(self, op_keys: Sequence[str]) -> tuple[sa.ColumnElement[bool], sa.ColumnElement[bool]]:
        return (
            outbox.c.integration == self.integration,
            outbox.c.op_key.in_(sa.bindparam("op_keys", sorted(set(op_keys)), expanding=True)),
        )

    def _read_many(self, conn: Connection, op_keys: Sequence[str]) -> list[OutboxEntry]:
        return [_entry(row) for row in conn.execute(sa.select(outbox).where(*self._in(op_keys))).mappings()]

    def _update(self, op_keys: Sequence[str], **values: Any) -> None:
        if not op_keys:
            return
        with begin_write(self._engine) as conn:
            updated = conn.execute(
                outbox.update().where(*self._in(op_keys)).values(updated_at=datetime.now(UTC), **values)
            ).rowcount
        missing = len(set(op_keys)) - updated
        if missing:
            raise FatalError(f"outbox of {self.integration}: {missing} of the keys unknown; claim them first")


def _entry(row: Any) -> OutboxEntry:
    return OutboxEntry(
        integration=row["integration"],
        op_key=row["op_key"],
        entity=row["entity"],
        record_key=row["record_key"],
        state=OutboxState(row["state"]),
        target_id=row["target_id"],
        run_id=row["run_id"],
        attempts=int(row["attempts"]),
        error=row["error"],
        created_at=row["created_at"],
    )

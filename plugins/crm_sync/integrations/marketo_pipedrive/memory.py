"""No echo and conflicts: what this sync last saw and wrote, per record and side.

After each entity is synced, the sync remembers both records of the pair as they stand
(the fields either direction maps, as one JSON snapshot and its hash). Then:

- **No echo.** A record that comes back as "changed" (its ``update_time`` moved, a Change
  Data Value activity) only because this sync wrote it has the remembered hash: it is
  skipped without reading the other side, so a write never travels back.
- **Conflicts.** The snapshot is also the base of the last sync. When the source changed a
  field (its mapped value differs from the target's base) and the target changed the same
  field too (its current value differs from its base), both sides edited it: the rule of the
  entity decides (``latest``: the most recent change wins; ``marketo``/``pipedrive``: that
  side always wins), and the conflict is logged to ``sync_log`` with error_code ``CONFLICT``.

The snapshots live in ``mkto_pd_record_memory``, a table of this integration (the engine's
``sync_state`` has no room for per-field values), created on first use.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from crm_sync.exceptions import ConfigurationError
from crm_sync.sync.hashing import encode, normalise
from crm_sync.sync.mapping import changed_fields
from crm_sync.sync.schema import begin_write, sync_log

__all__ = ["RULES", "Conflict", "RecordMemory", "memory_table"]

Rule = Literal["latest", "marketo", "pipedrive"]
RULES: tuple[str, ...] = ("latest", "marketo", "pipedrive")
INTEGRATION = "marketo_pipedrive"

_metadata = sa.MetaData()
memory_table = sa.Table(
    "mkto_pd_record_memory",
    _metadata,
    sa.Column("integration", sa.String(64), primary_key=True),
    sa.Column("entity", sa.String(64), primary_key=True),  # lead, person, organization, company, ...
    sa.Column("key", sa.Unicode(200), primary_key=True),  # the record's id on its side
    sa.Column("row_hash", sa.String(64), nullable=False),
    sa.Column("snapshot", sa.UnicodeText, nullable=False),  # JSON {field: value}
    sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("run_id", sa.String(200), nullable=True),
)


@dataclass(frozen=True)
class Conflict:
    """Both sides changed ``field`` since the last sync; ``winner`` is the side whose value stays."""

    field: str
    winner: Literal["source", "target"]


def _same(a: Any, b: Any) -> bool:
    """Equal as the diff sees values (``5`` and ``"5"``, blanks alike)."""
    return not changed_fields({"v": a}, {"v": b}) and not changed_fields({"v": b}, {"v": a})


class RecordMemory:
    """The snapshots of one integration in the staging database.

    Args:
        engine: the staging database.
        run_id: the run writing (logged with conflicts).
        rules: conflict rule per entity pair name (``person``, ``organization``, ``deal``);
            ``latest`` when not given.
        fresh: never take the "holds what the last sync left" shortcut (``full_refresh``, or
            records re-sent by key): every record is diffed against a fresh read of the other
            side. Nothing echoes even so: that diff is empty for values this sync wrote, and
            the conflict rules keep an edit made only on the target.
    """

    def __init__(
        self, engine: Engine, run_id: str, *, rules: Mapping[str, str] | None = None, fresh: bool = False
    ) -> None:
        bad = {k: v for k, v in (rules or {}).items() if v not in RULES}
        if bad:
            raise ConfigurationError(f"conflict rules must be one of {list(RULES)}: {bad}")
        self.engine = engine
        self.run_id = run_id
        self.rules = dict(rules or {})
        self.fresh = fresh
        self.conflicts = 0
        _metadata.create_all(engine, checkfirst=True)

    # ---- snapshots --------------------------------------------------------------------------

    def remember(self, entity: str, key: Any, values: Mapping[str, Any]) -> None:
        """Keep ``values`` as the record's state after this sync (replacing the last)."""
        digest = encode(normalise(dict(values)))[1]
        # The JSON keeps empty fields too (the hash drops them), so a field that was empty at the
        # last sync and is filled now still counts as a change.
        text = json.dumps(dict(values), default=str, sort_keys=True)
        row = {
            "integration": INTEGRATION,
            "entity": entity,
            "key": str(key),
            "row_hash": digest,
            "snapshot": text,
            "seen_at": datetime.now(UTC),
            "run_id": self.run_id,
        }
        where = self._where(entity, key)
        with begin_write(self.engine) as conn:
            if conn.execute(sa.update(memory_table).where(*where).values(**row)).rowcount == 0:
                conn.execute(sa.insert(memory_table).values(**row))

    def recall(self, entity: str, key: Any) -> dict[str, Any] | None:
        """The record's snapshot of the last sync, or None."""
        with self.engine.connect() as conn:
            text = conn.execute(sa.select(memory_table.c.snapshot).where(*self._where(entity, key))).scalar()
        return None if text is None else json.loads(text)

    def is_echo(self, entity: str, key: Any, values: Mapping[str, Any]) -> bool:
        """Whether the record holds what the last sync left: a change that only reflects our write.

        Always False for a ``fresh`` memory (the record is diffed against the other side instead).
        """
        if self.fresh:
            return False
        snapshot = self.recall(entity, key)
        if snapshot is None:
            return False
        current = normalise({name: values.get(name) for name in snapshot})
        return encode(current)[1] == encode(normalise(snapshot))[1]

    @staticmethod
    def _where(entity: str, key: Any) -> tuple[sa.ColumnElement[bool], ...]:
        return (
            memory_table.c.integration == INTEGRATION,
            memory_table.c.entity == entity,
            memory_table.c.key == str(key),
        )

    # ---- conflicts --------------------------------------------------------------------------

    def resolve(
        self,
        pair: str,
        *,
        target_entity: str,
        target_key: Any,
        diff: Mapping[str, Any],
        target_current: Mapping[str, Any],
        source_side: Literal["marketo", "pipedrive"],
        source_changed_at: datetime | None,
        target_changed_at: datetime | None,
        record_key: str,
    ) -> tuple[dict[str, Any], list[Conflict]]:
        """Apply the pair's rule to the fields both sides changed since the last sync.

        Args:
            pair: ``person``, ``organization`` or ``deal`` (the rule's name).
            target_entity: the target's memory entity (``lead``, ``person``...).
            target_key: the target's id.
            diff: the fields this sync is about to write to the target.
            target_current: the target's current values of those fields.
            source_side: the side the values come from.
            source_changed_at: when the source record last changed.
            target_changed_at: when the target record last changed.
            record_key: names the record in the log.

        Returns:
            The fields to write (a field the target wins is dropped) and the conflicts found.
        """
        base = self.recall(target_entity, target_key)
        if base is None:
            return dict(diff), []
        rule = self.rules.get(pair, "latest")
        keep = dict(diff)
        found: list[Conflict] = []
        for field, new in diff.items():
            if field not in base:
                continue
            old = base[field]
            if _same(new, old):
                # The source did not touch this field; the target did (else there would be no
                # diff). Writing would undo the target's edit, which travels the other way.
                keep.pop(field)
                continue
            if _same(target_current.get(field), old):
                continue  # only the source moved: write it
            if rule == "latest":
                source_wins = (source_changed_at or datetime.min.replace(tzinfo=UTC)) >= (
                    target_changed_at or datetime.min.replace(tzinfo=UTC)
                )
            else:
                source_wins = rule == source_side
            if not source_wins:
                keep.pop(field)
            found.append(Conflict(field, "source" if source_wins else "target"))
        if found:
            self._log(pair, record_key, found, rule, source_side)
        return keep, found

    def _log(self, pair: str, key: str, conflicts: list[Conflict], rule: str, source_side: str) -> None:
        other = "pipedrive" if source_side == "marketo" else "marketo"
        now = datetime.now(UTC)
        rows = [
            {
                "run_id": self.run_id,
                "integration": INTEGRATION,
                "entity": pair,
                "key": key,
                "action": "update",
                "status": "skipped" if c.winner == "target" else "success",
                "error_code": "CONFLICT",
                "message": (
                    f"both sides changed {c.field!r} since the last sync; rule {rule!r}: "
                    f"{source_side if c.winner == 'source' else other}'s value kept"
                ),
                "field": c.field,
                "logged_at": now,
            }
            for c in conflicts
        ]
        with begin_write(self.engine) as conn:
            conn.execute(sa.insert(sync_log), rows)
        self.conflicts += len(conflicts)

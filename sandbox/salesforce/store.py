"""In-memory SQLite store: one table per sObject, guarded by one re-entrant lock."""

from __future__ import annotations

import sqlite3
import threading
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sandbox.salesforce.schema import NUMBER_TYPES, FieldSchema, ObjectSchema

# Lookups the emulator itself runs (journey automation, SOQL joins go by primary key). Owner and
# audit references are left unindexed: each index slows the 100k-row Bulk loads.
_INDEXED_REFERENCES: dict[str, set[str]] = defaultdict(
    set, Opportunity={"Contact__c", "ContactId", "AccountId"}
)


def quote(identifier: str) -> str:
    """Quote a schema identifier (object and field names come from the schema files only)."""
    return '"' + identifier.replace('"', '""') + '"'


def _column_sql(field: FieldSchema) -> str:
    if field.type in {"boolean", "int"}:
        kind = "INTEGER"
    elif field.type in NUMBER_TYPES:
        kind = "REAL"
    elif field.type in {"id", "reference"}:
        kind = "TEXT"  # ids are case-sensitive
    elif field.is_text:
        kind = "TEXT COLLATE NOCASE"  # SOQL text comparisons are case-insensitive
    else:
        kind = "TEXT"
    suffix = " PRIMARY KEY" if field.name == "Id" else ""
    return f"{quote(field.name)} {kind}{suffix}"


class Store:
    """Rows of every object; callers hold ``lock`` around multi-statement work."""

    def __init__(self, schemas: dict[str, ObjectSchema]) -> None:
        self.schemas = schemas
        self.lock = threading.RLock()
        self.db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA synchronous=OFF")
        self._insert_sqls: dict[str, str] = {}
        self._create()

    def _create(self) -> None:
        for obj in self.schemas.values():
            table = quote(obj.name)
            columns = ", ".join(_column_sql(f) for f in obj.fields.values())
            self.db.execute(f"CREATE TABLE {table} ({columns})")
            for f in obj.fields.values():
                if f.external_id or f.unique or f.type == "email" or f.name in _INDEXED_REFERENCES[obj.name]:
                    self.db.execute(
                        f"CREATE INDEX {quote(f'ix_{obj.name}_{f.name}')} ON {table} ({quote(f.name)})"
                    )

    def reset(self) -> None:
        """Delete every row."""
        with self.lock:
            for obj in self.schemas.values():
                self.db.execute(f"DELETE FROM {quote(obj.name)}")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN/COMMIT (ROLLBACK on error) while holding the lock."""
        with self.lock:
            self.db.execute("BEGIN")
            try:
                yield
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    @contextmanager
    def savepoint(self, name: str = "sp") -> Iterator[None]:
        """A nested transaction; rolled back if the block raises."""
        with self.lock:
            self.db.execute(f"SAVEPOINT {name}")
            try:
                yield
            except BaseException:
                self.db.execute(f"ROLLBACK TO {name}")
                self.db.execute(f"RELEASE {name}")
                raise
            self.db.execute(f"RELEASE {name}")

    def rollback_to(self, name: str) -> None:
        """Undo everything since ``SAVEPOINT name`` but keep the savepoint open."""
        self.db.execute(f"ROLLBACK TO {name}")

    def _insert_sql(self, obj: ObjectSchema) -> str:
        sql = self._insert_sqls.get(obj.name)
        if sql is None:
            names = list(obj.fields)
            sql = (
                f"INSERT INTO {quote(obj.name)} ({', '.join(quote(n) for n in names)}) "
                f"VALUES ({', '.join('?' for _ in names)})"
            )
            self._insert_sqls[obj.name] = sql
        return sql

    def insert(self, obj: ObjectSchema, row: dict[str, Any]) -> None:
        """Insert a row (canonical field names; fields left out are null)."""
        values = [row.get(name) for name in obj.fields]
        with self.lock:
            self.db.execute(self._insert_sql(obj), values)

    def update(self, obj: ObjectSchema, record_id: str, changes: dict[str, Any]) -> None:
        """Set ``changes`` on one row."""
        if not changes:
            return
        assignments = ", ".join(f"{quote(n)} = ?" for n in changes)
        with self.lock:
            self.db.execute(
                f"UPDATE {quote(obj.name)} SET {assignments} WHERE Id = ?", [*changes.values(), record_id]
            )

    def fetch(self, obj: ObjectSchema, record_id: str) -> dict[str, Any] | None:
        """One row (deleted rows included) as ``{field: stored value}``."""
        with self.lock:
            cursor = self.db.execute(f"SELECT * FROM {quote(obj.name)} WHERE Id = ?", [record_id])
            row = cursor.fetchone()
            if row is None:
                return None
            return dict(zip([d[0] for d in cursor.description], row, strict=True))

    def ids_where(
        self, obj: ObjectSchema, field: str, value: Any, *, exclude_id: str | None = None, limit: int = 10
    ) -> list[str]:
        """Ids of live rows whose ``field`` equals ``value`` (text compares case-insensitively)."""
        sql = f"SELECT Id FROM {quote(obj.name)} WHERE {quote(field)} = ? AND IsDeleted = 0"
        params: list[Any] = [value]
        if exclude_id:
            sql += " AND Id != ?"
            params.append(exclude_id)
        with self.lock:
            return [r[0] for r in self.db.execute(sql + f" ORDER BY rowid LIMIT {int(limit)}", params)]

    def rows(self, obj: ObjectSchema, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        """Every row of ``obj`` in insertion order."""
        where = "" if include_deleted else " WHERE IsDeleted = 0"
        with self.lock:
            cursor = self.db.execute(f"SELECT * FROM {quote(obj.name)}{where} ORDER BY rowid")
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def count(self, obj: ObjectSchema) -> int:
        """Live rows of ``obj``."""
        with self.lock:
            return self.db.execute(f"SELECT COUNT(*) FROM {quote(obj.name)} WHERE IsDeleted = 0").fetchone()[
                0
            ]

    def select(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Run a compiled SOQL query."""
        with self.lock:
            return self.db.execute(sql, list(params)).fetchall()

"""Compile parsed SOQL to SQLite (values always bound) and shape the rows as Salesforce returns them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sandbox.salesforce.errors import ApiError
from sandbox.salesforce.ids import to_18
from sandbox.salesforce.schema import NUMBER_TYPES, FieldSchema, ObjectSchema
from sandbox.salesforce.soql import (
    LIKE_PERCENT,
    LIKE_UNDERSCORE,
    BoolOp,
    Comparison,
    InList,
    Literal,
    Not,
    Path,
    Query,
    malformed,
    parse,
)
from sandbox.salesforce.store import Store, quote
from sandbox.salesforce.values import format_datetime, parse_datetime, to_csv, to_json

MAX_RELATIONSHIP_DEPTH = 5
MAX_OFFSET = 2000
FIELDS_LIMIT = 200


def invalid_field(name: str, obj: ObjectSchema) -> ApiError:
    """INVALID_FIELD worded as Salesforce does."""
    return ApiError(
        400,
        "INVALID_FIELD",
        f"No such column '{name}' on entity '{obj.name}'. If you are attempting to use a custom field, "
        "be sure to append the '__c' after the custom field name. Please reference your WSDL or the "
        "describe call for the appropriate names.",
    )


@dataclass(frozen=True)
class Column:
    """One selected field: the relationship chain to it and its SQL expression."""

    path: tuple[str, ...]  # canonical relationship names + field name
    field: FieldSchema
    sql: str
    header: str


@dataclass
class Compiled:
    """A query ready to run."""

    obj: ObjectSchema
    sql: str
    params: list[Any]
    columns: list[Column]
    count_only: bool
    relationship_ids: dict[tuple[str, ...], tuple[int, ObjectSchema]] = field(default_factory=dict)


class Compiler:
    """Turns a :class:`Query` into SQL against the store's tables."""

    def __init__(self, store: Store, query: Query, *, include_deleted: bool, today: dt.date) -> None:
        self.store = store
        self.query = query
        self.include_deleted = include_deleted
        self.today = today
        self.obj = self._object(query.object_name)
        self.joins: dict[tuple[str, ...], tuple[str, ObjectSchema]] = {(): ("t0", self.obj)}
        self.join_sql: list[str] = []
        self.params: list[Any] = []

    def _object(self, name: str) -> ObjectSchema:
        for obj in self.store.schemas.values():
            if obj.name.lower() == name.lower():
                return obj
        raise ApiError(
            400,
            "INVALID_TYPE",
            f"sObject type '{name}' is not supported. If you are attempting to use a custom object, be sure "
            "to append the '__c' after the entity name. Please reference your WSDL or the describe call for "
            "the appropriate names.",
        )

    def _alias_for(self, chain: tuple[str, ...]) -> tuple[str, ObjectSchema]:
        if chain in self.joins:
            return self.joins[chain]
        parent_alias, parent_obj = self._alias_for(chain[:-1])
        ref = parent_obj.relationship(chain[-1])
        assert ref is not None
        assert ref.reference_to
        target = self.store.schemas[ref.reference_to]
        alias = f"t{len(self.joins)}"
        self.join_sql.append(
            f"LEFT JOIN {quote(target.name)} {alias} ON {alias}.Id = {parent_alias}.{quote(ref.name)} "
            f"AND {alias}.IsDeleted = 0"
        )
        self.joins[chain] = (alias, target)
        return self.joins[chain]

    def resolve(self, path: Path) -> Column:
        """The SQL column for a (possibly dotted) field path."""
        parts = list(path.parts)
        if len(parts) > 1 and parts[0].lower() == self.obj.name.lower():
            parts = parts[1:]  # SOQL allows prefixing with the object name
        if len(parts) - 1 > MAX_RELATIONSHIP_DEPTH:
            raise malformed(f"{path.text}: relationships are limited to {MAX_RELATIONSHIP_DEPTH} levels")
        obj = self.obj
        chain: list[str] = []
        for rel in parts[:-1]:
            ref = obj.relationship(rel)
            if ref is None:
                raise ApiError(
                    400,
                    "INVALID_FIELD",
                    f"Didn't understand relationship '{rel}' in field path. If you are attempting to use a "
                    "custom relationship, be sure to append the '__r' after the custom relationship name. "
                    "Please reference your WSDL or the describe call for the appropriate names.",
                )
            chain.append(ref.relationship_name or rel)
            obj = self.store.schemas[ref.reference_to or ""]
        f = obj.field(parts[-1])
        if f is None:
            raise invalid_field(parts[-1], obj)
        alias, _ = self._alias_for(tuple(chain))
        header = ".".join([*chain, f.name])
        return Column(path=(*chain, f.name), field=f, sql=f"{alias}.{quote(f.name)}", header=header)

    # -- WHERE -----------------------------------------------------------------------------

    def condition(self, node: Any) -> str:
        """SQL for a condition node."""
        if isinstance(node, BoolOp):
            return "(" + f" {node.op} ".join(self.condition(item) for item in node.items) + ")"
        if isinstance(node, Not):
            return f"(NOT {self.condition(node.item)})"
        if isinstance(node, InList):
            return self._in_list(node)
        if isinstance(node, Comparison):
            return self._comparison(node)
        raise AssertionError(node)

    def _bind(self, value: Any) -> str:
        self.params.append(value)
        return "?"

    def _type_error(self, f: FieldSchema, literal: Literal) -> ApiError:
        kind = {"date": "date", "datetime": "dateTime", "boolean": "boolean"}.get(
            f.type, "number" if f.type in NUMBER_TYPES else "string"
        )
        quoted = (
            "should not be enclosed in quotes" if literal.kind == "string" else "must be enclosed in quotes"
        )
        if kind == "string":
            return ApiError(
                400,
                "INVALID_FIELD",
                f"value of filter criterion for field '{f.name}' must be of type string "
                "and should be enclosed in quotes",
            )
        return ApiError(
            400,
            "INVALID_FIELD",
            f"value of filter criterion for field '{f.name}' must be of type {kind} and {quoted}",
        )

    def _scalar(self, f: FieldSchema, literal: Literal, *, like: bool = False) -> Any:
        """The stored-form value of ``literal`` for field ``f`` (type-checked)."""
        kind = literal.kind
        if kind == "null":
            return None
        if (
            kind == "string"
            and (LIKE_PERCENT in literal.value or LIKE_UNDERSCORE in literal.value)
            and not like
        ):
            raise malformed("Invalid string literal: escape sequences \\% and \\_ are only valid in LIKE")
        if f.type in {"id", "reference"}:
            if kind != "string":
                raise self._type_error(f, literal)
            normalised = to_18(literal.value)
            if normalised is None:
                raise ApiError(400, "INVALID_QUERY_FILTER_OPERATOR", f"invalid ID field: {literal.value}")
            return normalised
        if f.is_text:
            if kind != "string":
                raise self._type_error(f, literal)
            return literal.value
        if f.type == "boolean":
            if kind != "boolean":
                raise self._type_error(f, literal)
            return int(literal.value)
        if f.type in NUMBER_TYPES:
            if kind != "number":
                raise self._type_error(f, literal)
            return literal.value
        if f.type == "date":
            if kind != "date":
                raise self._type_error(f, literal)
            return literal.value
        if f.type == "datetime":
            if kind != "datetime":
                raise self._type_error(f, literal)
            moment = parse_datetime(literal.value)
            if moment is None:
                raise malformed(f"invalid dateTime literal {literal.value}")
            return format_datetime(moment)
        raise self._type_error(f, literal)

    def _date_range(self, f: FieldSchema, literal: Literal) -> tuple[str, str]:
        name, n = literal.value
        today = self.today
        start, end = {
            "TODAY": (today, today + dt.timedelta(days=1)),
            "YESTERDAY": (today - dt.timedelta(days=1), today),
            "TOMORROW": (today + dt.timedelta(days=1), today + dt.timedelta(days=2)),
            "LAST_N_DAYS": (today - dt.timedelta(days=n), today + dt.timedelta(days=1)),
            "NEXT_N_DAYS": (today + dt.timedelta(days=1), today + dt.timedelta(days=n + 1)),
        }[name]
        if f.type == "datetime":
            as_dt: Callable[[dt.date], str] = lambda d: format_datetime(  # noqa: E731
                dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC)
            )
            return as_dt(start), as_dt(end)
        return start.isoformat(), end.isoformat()

    def _comparison(self, node: Comparison) -> str:
        column = self.resolve(node.path)
        f, col, op = column.field, column.sql, node.op
        if node.value.kind == "date_fn":
            if f.type not in {"date", "datetime"}:
                raise self._type_error(f, node.value)
            start, end = self._date_range(f, node.value)
            s, e = self._bind(start), self._bind(end)
            return {
                "=": f"({col} >= {s} AND {col} < {e})",
                "!=": f"({col} IS NULL OR {col} < {s} OR {col} >= {e})",
                "<": f"{col} < {s}",
                "<=": f"{col} < {e}",
                ">": f"{col} >= {e}",
                ">=": f"{col} >= {s}",
            }.get(op) or self._bad_op(op, f)
        if op == "LIKE":
            if not f.is_text:
                raise ApiError(400, "INVALID_FIELD", f"invalid operator on field '{f.name}' for LIKE")
            value = self._scalar(f, node.value, like=True)
            pattern = value.replace("\\", "\\\\").replace(LIKE_PERCENT, "\\%").replace(LIKE_UNDERSCORE, "\\_")
            return f"{col} LIKE {self._bind(pattern)} ESCAPE '\\'"
        value = self._scalar(f, node.value)
        if value is None:
            if op == "=":
                return f"{col} IS NULL"
            if op == "!=":
                return f"{col} IS NOT NULL"
            return "0"
        if op == "!=":
            # SOQL's != matches records where the field is null.
            return f"({col} IS NULL OR {col} != {self._bind(value)})"
        if op in {"<", "<=", ">", ">="} and f.type == "boolean":
            return self._bad_op(op, f)
        return f"{col} {op} {self._bind(value)}"

    def _bad_op(self, op: str, f: FieldSchema) -> str:
        raise ApiError(400, "INVALID_FIELD", f"invalid operator {op} on field '{f.name}'")

    def _in_list(self, node: InList) -> str:
        column = self.resolve(node.path)
        values = [self._scalar(column.field, literal) for literal in node.values]
        non_null = [v for v in values if v is not None]
        has_null = len(non_null) != len(values)
        marks = ", ".join(self._bind(v) for v in non_null) or "NULL"
        col = column.sql
        if node.negated:
            inner = f"({col} IS NULL OR {col} NOT IN ({marks}))"
            return f"({inner} AND {col} IS NOT NULL)" if has_null else inner
        inner = f"{col} IN ({marks})"
        return f"({inner} OR {col} IS NULL)" if has_null else inner

    # -- statement -------------------------------------------------------------------------

    def compile(self) -> Compiled:
        """Build the SQL statement."""
        query = self.query
        columns: list[Column] = []
        if query.fields_macro:
            if query.fields_macro in {"ALL", "CUSTOM"} and (
                query.limit is None or query.limit > FIELDS_LIMIT
            ):
                raise malformed(f"The SOQL FIELDS function must have a LIMIT of at most {FIELDS_LIMIT}")
            for f in self.obj.fields.values():
                if query.fields_macro == "ALL" or (f.custom == (query.fields_macro == "CUSTOM")):
                    columns.append(self.resolve(Path((f.name,))))
        for path in query.fields:
            column = self.resolve(path)
            if column.header not in {c.header for c in columns}:
                columns.append(column)
        where = self.condition(query.where) if query.where is not None else None
        order = []
        for item in query.order_by:
            column = self.resolve(item.path)
            nulls_last = bool(item.nulls_last)
            order.append(
                f"{column.sql} {'DESC' if item.descending else 'ASC'} "
                f"NULLS {'LAST' if nulls_last else 'FIRST'}"
            )
        if query.offset is not None and query.offset > MAX_OFFSET:
            raise ApiError(400, "NUMBER_OUTSIDE_VALID_RANGE", f"Maximum SOQL offset allowed is {MAX_OFFSET}")
        relationship_ids: dict[tuple[str, ...], tuple[int, ObjectSchema]] = {}
        select = ["t0.Id"]
        for chain, (alias, target) in list(self.joins.items()):
            if chain:
                relationship_ids[chain] = (len(select), target)
                select.append(f"{alias}.Id")
        select += [c.sql for c in columns]
        filters = [] if self.include_deleted else ["t0.IsDeleted = 0"]
        if where:
            filters.append(where)
        sql = f"SELECT {'COUNT(*)' if query.count_only else ', '.join(select)} FROM {quote(self.obj.name)} t0"
        if self.join_sql:
            sql += " " + " ".join(self.join_sql)
        if filters:
            sql += " WHERE " + " AND ".join(filters)
        if not query.count_only:
            sql += " ORDER BY " + ", ".join([*order, "t0.rowid"])
            if query.limit is not None or query.offset is not None:
                sql += f" LIMIT {int(query.limit) if query.limit is not None else -1}"
                sql += f" OFFSET {int(query.offset or 0)}"
        return Compiled(
            obj=self.obj,
            sql=sql,
            params=self.params,
            columns=columns,
            count_only=query.count_only,
            relationship_ids=relationship_ids,
        )


def compile_soql(store: Store, text: str, *, include_deleted: bool, today: dt.date) -> tuple[Query, Compiled]:
    """Parse and compile ``text``."""
    query = parse(text)
    return query, Compiler(store, query, include_deleted=include_deleted, today=today).compile()


def run_count(store: Store, compiled: Compiled, query: Query) -> int:
    """Total for ``COUNT()`` (LIMIT/OFFSET applied as Salesforce does)."""
    total = store.select(compiled.sql, compiled.params)[0][0]
    total = max(0, total - (query.offset or 0))
    return min(total, query.limit) if query.limit is not None else total


def shape_records(compiled: Compiled, rows: list[tuple[Any, ...]], version: str) -> list[dict[str, Any]]:
    """REST records: ``attributes`` + canonical field names, parent records nested."""
    base = f"/services/data/v{version}/sobjects"
    first_column = 1 + len(compiled.relationship_ids)
    records = []
    for row in rows:
        record: dict[str, Any] = {
            "attributes": {"type": compiled.obj.name, "url": f"{base}/{compiled.obj.name}/{row[0]}"}
        }
        for offset, column in enumerate(compiled.columns):
            target = record
            skip = False
            for depth, rel in enumerate(column.path[:-1]):
                chain = column.path[: depth + 1]
                index, rel_obj = compiled.relationship_ids[chain]
                parent_id = row[index]
                if parent_id is None:
                    target[rel] = None
                    skip = True
                    break
                if not isinstance(target.get(rel), dict):
                    target[rel] = {
                        "attributes": {"type": rel_obj.name, "url": f"{base}/{rel_obj.name}/{parent_id}"}
                    }
                target = target[rel]
            if not skip:
                target[column.field.name] = to_json(column.field, row[first_column + offset])
        records.append(record)
    return records


def csv_rows(compiled: Compiled, rows: list[tuple[Any, ...]]) -> list[list[str]]:
    """Bulk query CSV cells in SELECT order."""
    first_column = 1 + len(compiled.relationship_ids)
    return [
        [to_csv(column.field, row[first_column + offset]) for offset, column in enumerate(compiled.columns)]
        for row in rows
    ]

"""One shape for SOQL results, whether they came from REST JSON or a Bulk 2.0 CSV.

Every record is a flat dict keyed by the columns as written in the SELECT list, in that
order; parent fields are dotted (``"Account.Name"``) and are None when the parent is null.
Values are typed from ``describe``: boolean -> bool, int/long -> int, double/currency/percent
-> float, datetime -> ``"YYYY-MM-DDThh:mm:ss.sssZ"`` (UTC), date/time and text -> str, empty
-> None. AWS AppFlow's REST/Bulk switch changes date and null formats between runs
(reference/anchors.md section 1); this module is how we avoid that.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from crm_sync.hooks.salesforce_types import SObjectDescription

__all__ = ["Column", "ParsedQuery", "RowShaper", "coerce", "flatten", "parse_query"]

_PATH = re.compile(r"[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)*")
_FROM_OBJECT = re.compile(r"\s*([A-Za-z][A-Za-z0-9_]*)")
# SOQL that Bulk API 2.0 query jobs refuse: aggregates, OFFSET, TYPEOF, child subqueries
# ("Bulk API 2.0 query ... does not support", Bulk API 2.0 guide, query considerations).
_BULK_UNSUPPORTED = re.compile(
    r"\b(GROUP\s+BY|OFFSET|TYPEOF|COUNT\s*\(|SUM\s*\(|AVG\s*\(|MIN\s*\(|MAX\s*\()", re.IGNORECASE
)
_INT_TYPES = frozenset({"int", "long"})
_FLOAT_TYPES = frozenset({"double", "currency", "percent"})


@dataclass(frozen=True, slots=True)
class Column:
    """One SELECT-list entry: a field path, or any other expression (``path`` is None)."""

    text: str
    path: str | None


@dataclass(frozen=True, slots=True)
class ParsedQuery:
    """What the hook needs to know about a SOQL statement."""

    sobject: str
    columns: tuple[Column, ...]
    bulk_ok: bool


def _top_level_split(text: str) -> list[str]:
    """Split on commas outside parentheses and string literals."""
    parts, depth, quoted, start, i = [], 0, False, 0, 0
    while i < len(text):
        char = text[i]
        if quoted:
            if char == "\\":
                i += 1
            elif char == "'":
                quoted = False
        elif char == "'":
            quoted = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def _find_top_level_from(text: str) -> int:
    """Index of the first ``FROM`` keyword outside parentheses and literals, or -1."""
    depth, quoted, i = 0, False, 0
    upper = text.upper()
    while i < len(text):
        char = text[i]
        if quoted:
            if char == "\\":
                i += 1
            elif char == "'":
                quoted = False
        elif char == "'":
            quoted = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif (
            depth == 0
            and upper.startswith("FROM", i)
            and (i == 0 or not text[i - 1].isalnum())
            and (i + 4 >= len(text) or not (text[i + 4].isalnum() or text[i + 4] == "_"))
        ):
            return i
        i += 1
    return -1


def parse_query(soql: str) -> ParsedQuery:
    """Read the sObject and SELECT list of a SOQL query.

    Raises:
        ValueError: when the text is not a ``SELECT ... FROM <object>`` query.
    """
    text = soql.strip()
    if not re.match(r"SELECT\s", text, re.IGNORECASE):
        raise ValueError("not a SOQL SELECT statement")
    at = _find_top_level_from(text)
    match = _FROM_OBJECT.match(text, at + 4) if at > 0 else None
    if not match:
        raise ValueError("SOQL statement has no FROM <object>")
    columns = []
    for item in _top_level_split(text[6:at]):
        columns.append(Column(item, item if _PATH.fullmatch(item) else None))
    has_subquery = any(c.text.startswith("(") for c in columns)
    bulk_ok = not has_subquery and not _BULK_UNSUPPORTED.search(text)
    return ParsedQuery(sobject=match.group(1), columns=tuple(columns), bulk_ok=bulk_ok)


def flatten(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten one REST record: drop ``attributes``, turn parent records into dotted keys.

    Child-relationship subquery results become lists of flattened records.
    """
    out: dict[str, Any] = {}
    for key, value in record.items():
        if key == "attributes":
            continue
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and "attributes" in value:
            out.update(flatten(value, f"{name}."))
        elif isinstance(value, Mapping) and "records" in value and "totalSize" in value:
            out[name] = [flatten(child) for child in value["records"]]
        else:
            out[name] = value
    return out


def _datetime(value: Any) -> str:
    """Canonical UTC datetime text, ``YYYY-MM-DDThh:mm:ss.sssZ``."""
    parsed = datetime.fromisoformat(str(value))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # Salesforce datetimes are UTC when unmarked
    return parsed.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def coerce(value: Any, sf_type: str | None) -> Any:
    """Type one value (JSON from REST or text from a Bulk CSV) by its Salesforce field type."""
    if value is None or value == "":
        return None
    if sf_type is None:
        return value
    if sf_type == "boolean":
        return value if isinstance(value, bool) else str(value).strip().lower() == "true"
    if sf_type in _INT_TYPES:
        return int(float(value)) if isinstance(value, str) and "." in value else int(value)
    if sf_type in _FLOAT_TYPES:
        return float(value)
    if sf_type == "datetime":
        return _datetime(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return value if isinstance(value, Mapping | list) else str(value)


class RowShaper:
    """Turns REST records and Bulk CSV rows of one query into the same typed dicts."""

    def __init__(self, columns: Iterable[Column], types: Mapping[str, str | None]) -> None:
        self._columns = tuple(columns)
        self._types = {k.lower(): v for k, v in types.items()}
        self._paths = [c.path for c in self._columns if c.path]
        self._lower_paths = {p.lower() for p in self._paths}
        self._parents = {
            ".".join(parts[:i])
            for p in self._lower_paths
            if len(parts := p.split(".")) > 1
            for i in range(1, len(parts))
        }

    @classmethod
    def build(cls, parsed: ParsedQuery, describe: Callable[[str], SObjectDescription]) -> RowShaper:
        """Resolve each column's type through ``describe`` (parents via their lookup field)."""
        types: dict[str, str | None] = {}
        for column in parsed.columns:
            if column.path:
                types[column.path] = _resolve_type(parsed.sobject, column.path, describe)
        return cls(parsed.columns, types)

    def _type(self, path: str) -> str | None:
        return self._types.get(path.lower())

    def from_rest(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Shape one REST query record."""
        flat = flatten(record)
        by_lower = {k.lower(): v for k, v in flat.items()}
        out = {path: coerce(by_lower.get(path.lower()), self._type(path)) for path in self._paths}
        for key, value in flat.items():
            lower = key.lower()
            # a null parent ("Account": null) is already spread over its selected paths
            if lower not in self._lower_paths and lower not in self._parents:
                out[key] = value
        return out

    def from_csv(self, row: Mapping[str, str]) -> dict[str, Any]:
        """Shape one Bulk 2.0 query CSV row."""
        by_lower = {k.lower(): v for k, v in row.items()}
        out = {path: coerce(by_lower.get(path.lower()), self._type(path)) for path in self._paths}
        for key, value in row.items():
            if key.lower() not in self._lower_paths:
                out[key] = value if value != "" else None
        return out


def _resolve_type(sobject: str, path: str, describe: Callable[[str], SObjectDescription]) -> str | None:
    """The Salesforce type of ``path`` on ``sobject``, following lookups; None if unknown."""
    *parents, name = path.split(".")
    current = sobject
    for relationship in parents:
        lookup = describe(current).relationship(relationship)
        if lookup is None or not lookup.reference_to:
            return None
        current = lookup.reference_to[0]
    info = describe(current).field(name)
    return info.type if info else None

"""Safe SOQL: quoted literals, validated identifiers and Salesforce ids, a tiny SELECT builder.

Values never reach a query except through :func:`quote`, and names never except through the
allow-list in :func:`identifier`, so no value can change the shape of a query.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal

__all__ = [
    "Fragment",
    "fragment",
    "identifier",
    "like_pattern",
    "quote",
    "select",
    "sf_id_18",
    "soql_in",
    "validate_sf_id",
]

# Quoted string escape sequences, SOQL and SOSL Reference, "Quoted String Escape Sequences":
# https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select_quotedstringescapes.htm
_STRING_ESCAPES = str.maketrans(
    {
        "\\": "\\\\",
        "'": "\\'",
        '"': '\\"',
        "\n": "\\n",
        "\r": "\\r",
        "\t": "\\t",
        "\b": "\\b",
        "\f": "\\f",
    }
)
# Only meaningful inside a LIKE pattern; elsewhere "\%" is an invalid escape (same page).
_LIKE_ESCAPES = str.maketrans({"%": "\\%", "_": "\\_"})

_NAME = r"[A-Za-z][A-Za-z0-9_]{0,79}"
_IDENTIFIER = re.compile(rf"{_NAME}(?:\.{_NAME}){{0,5}}")
_ID_CHARS = re.compile(r"[A-Za-z0-9]+")
_CHECKSUM_ALPHABET = string.ascii_uppercase + "012345"


class Fragment(str):
    """A piece of SOQL built only from validated names and quoted literals."""

    __slots__ = ()


def quote(value: Any) -> str:
    """Return ``value`` as a SOQL literal.

    Strings are single-quoted and escaped; numbers, booleans and ``None`` (``null``) are bare;
    dates are ``YYYY-MM-DD``; datetimes must be timezone-aware and become UTC
    ``YYYY-MM-DDThh:mm:ssZ`` (SOQL dateTime literals have no fractional seconds, so they are
    truncated to the second).

    Raises:
        TypeError: for a type that has no SOQL literal (lists: use :func:`soql_in`).
        ValueError: for NaN/infinite numbers or naive datetimes.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value.translate(_STRING_ESCAPES) + "'"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float | Decimal):
        if not math.isfinite(value):
            raise ValueError(f"SOQL has no literal for the number {value}")
        return format(Decimal(repr(value)) if isinstance(value, float) else value, "f")
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("SOQL dateTime literals need a timezone-aware datetime")
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"no SOQL literal for a value of type {type(value).__name__}")


def like_pattern(
    text: str, *, match: Literal["contains", "startswith", "endswith", "exact"] = "contains"
) -> str:
    """Return a quoted LIKE pattern matching ``text`` literally (its ``%`` and ``_`` escaped)."""
    body = text.translate(_STRING_ESCAPES).translate(_LIKE_ESCAPES)
    prefix = "%" if match in ("contains", "endswith") else ""
    suffix = "%" if match in ("contains", "startswith") else ""
    return f"'{prefix}{body}{suffix}'"


def soql_in(values: Iterable[Any]) -> str:
    """Return ``(v1,v2,...)`` for an ``IN`` clause.

    Raises:
        ValueError: when ``values`` is empty (``IN ()`` is a MALFORMED_QUERY).
    """
    quoted = [quote(value) for value in values]
    if not quoted:
        raise ValueError("soql_in() needs at least one value: 'IN ()' is not valid SOQL")
    return "(" + ",".join(quoted) + ")"


def identifier(name: str) -> str:
    """Return ``name`` if it is an sObject or field API name or a dotted relationship path.

    Raises:
        ValueError: when ``name`` is anything else (spaces, quotes, operators, ...).
    """
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"not a Salesforce API name or field path: {str(name)[:60]!r}")
    return name


def _checksum(id15: str) -> str:
    """Return the 3-character case-safe suffix of a 15-character id."""
    suffix = ""
    for start in (0, 5, 10):
        bits = sum(1 << i for i, char in enumerate(id15[start : start + 5]) if "A" <= char <= "Z")
        suffix += _CHECKSUM_ALPHABET[bits]
    return suffix


def validate_sf_id(value: str) -> str:
    """Return ``value`` if it is a well-formed 15- or 18-character Salesforce id.

    The 18-character form's last three characters encode the case of the first fifteen;
    a mismatch means the id was mangled (for example lower-cased by a spreadsheet).

    Raises:
        ValueError: naming what is wrong with the id.
        TypeError: when ``value`` is not a string.
    """
    if not isinstance(value, str):
        raise TypeError(f"a Salesforce id must be a string, not {type(value).__name__}")
    shown = repr(value[:24])
    if len(value) not in (15, 18):
        raise ValueError(f"invalid Salesforce id {shown}: {len(value)} characters, expected 15 or 18")
    if not _ID_CHARS.fullmatch(value):
        raise ValueError(f"invalid Salesforce id {shown}: only letters and digits are allowed")
    if len(value) == 18 and value[15:].upper() != _checksum(value[:15]):
        raise ValueError(
            f"invalid Salesforce id {shown}: checksum suffix {value[15:]!r} does not match "
            f"the case of the first 15 characters (expected {_checksum(value[:15])!r})"
        )
    return value


def sf_id_18(value: str) -> str:
    """Return the 18-character case-safe form of a valid 15- or 18-character id."""
    validate_sf_id(value)
    return value[:15] + _checksum(value[:15])


def fragment(template: str, *args: Any, **kwargs: Any) -> Fragment:
    """Fill ``{}`` / ``{0}`` / ``{name}`` placeholders in a SOQL template with quoted literals.

    The template is code (trusted); every argument is data and goes through :func:`quote`,
    or :func:`soql_in` when it is a list, tuple, set or frozenset.

    Example:
        ``fragment("Email = {} AND CreatedDate >= {since}", email, since=start)``
    """
    formatter = _QuotingFormatter()
    return Fragment(formatter.vformat(template, args, kwargs))


class _QuotingFormatter(string.Formatter):
    """A str.format that quotes every field and refuses format specs and conversions."""

    def format_field(self, value: Any, format_spec: str) -> str:
        if format_spec:
            raise ValueError("format specs are not allowed in SOQL templates")
        return _literal(value)

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if conversion:
            raise ValueError("conversions (!r, !s) are not allowed in SOQL templates")
        return value


def _literal(value: Any) -> str:
    """Quote a scalar, or a collection as an IN list."""
    if isinstance(value, list | tuple | set | frozenset):
        return soql_in(sorted(value, key=repr) if isinstance(value, set | frozenset) else value)
    return quote(value)


def _where(where: Mapping[str, Any] | Fragment) -> str:
    """Render a WHERE condition: a Fragment as is, a mapping as ANDed equalities."""
    if isinstance(where, Fragment):
        return where
    if isinstance(where, str):
        raise TypeError("where= takes a mapping or a soql.fragment(...), never a plain string")
    parts = []
    for field, value in where.items():
        name = identifier(field)
        if value is None:
            parts.append(f"{name} = null")
        elif isinstance(value, list | tuple | set | frozenset):
            parts.append(f"{name} IN {_literal(value)}")
        else:
            parts.append(f"{name} = {quote(value)}")
    return " AND ".join(parts)


def select(
    sobject: str,
    fields: Sequence[str],
    *,
    where: Mapping[str, Any] | Fragment | None = None,
    order_by: Sequence[str | tuple[str, Literal["ASC", "DESC"]]] = (),
    limit: int | None = None,
) -> Fragment:
    """Build ``SELECT fields FROM sobject [WHERE ...] [ORDER BY ...] [LIMIT n]``.

    Args:
        sobject: the sObject API name.
        fields: field API names or relationship paths (``Account.Name``), or ``["COUNT()"]``.
        where: a mapping ``{field: value}`` (``None`` -> ``= null``, a list -> ``IN``), ANDed;
            or a :func:`fragment` for anything else.
        order_by: field names, or ``(field, "ASC"|"DESC")`` pairs.
        limit: a positive row limit.

    Raises:
        ValueError: for an invalid name, an empty field list or a bad limit.
    """
    if isinstance(fields, str):
        raise TypeError("fields must be a sequence of names, not one string")
    if not fields:
        raise ValueError("select() needs at least one field")
    columns = "COUNT()" if list(fields) == ["COUNT()"] else ", ".join(identifier(f) for f in fields)
    soql = f"SELECT {columns} FROM {identifier(sobject)}"
    if where:
        soql += f" WHERE {_where(where)}"
    if order_by:
        terms = []
        for term in order_by:
            name, direction = (term, "ASC") if isinstance(term, str) else term
            if direction not in ("ASC", "DESC"):
                raise ValueError(f"order direction must be ASC or DESC, not {direction!r}")
            terms.append(f"{identifier(name)} {direction}")
        soql += " ORDER BY " + ", ".join(terms)
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a positive integer, not {limit!r}")
        soql += f" LIMIT {limit}"
    return Fragment(soql)

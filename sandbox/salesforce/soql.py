"""A parser for the SOQL subset the emulator serves (see sandbox/README.md for what is covered).

Hand-written rather than sqlglot: SOQL's date literals (``2024-01-31``, ``LAST_N_DAYS:7``),
``COUNT()``, ``FIELDS(ALL)`` and its string escapes are not SQL, and reading escapes exactly is
what keeps an injection attempt inside its literal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sandbox.salesforce.errors import ApiError

# Private-use characters stand for the LIKE-only escapes \% and \_ inside decoded strings.
LIKE_PERCENT = "\ue000"
LIKE_UNDERSCORE = "\ue001"
_ESCAPES = {
    "'": "'",
    '"': '"',
    "\\": "\\",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "b": "\b",
    "f": "\f",
    "%": LIKE_PERCENT,
    "_": LIKE_UNDERSCORE,
}
_DATETIME = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2})"
_TOKEN_RE = re.compile(
    rf"""
    (?P<ws>\s+)
  | (?P<datetime>{_DATETIME})
  | (?P<date>\d{{4}}-\d{{2}}-\d{{2}})(?![\dT])
  | (?P<number>[+-]?\d+(?:\.\d+)?)(?![\w.])
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),:])
    """,
    re.VERBOSE,
)
KEYWORDS = {
    "SELECT",
    "FROM",
    "WHERE",
    "AND",
    "OR",
    "NOT",
    "IN",
    "LIKE",
    "ORDER",
    "BY",
    "ASC",
    "DESC",
    "NULLS",
    "FIRST",
    "LAST",
    "LIMIT",
    "OFFSET",
    "NULL",
    "TRUE",
    "FALSE",
    "GROUP",
    "HAVING",
    "INCLUDES",
    "EXCLUDES",
    "WITH",
    "FOR",
    "USING",
    "TYPEOF",
}
DATE_FUNCTIONS = {"TODAY", "YESTERDAY", "TOMORROW"}
DATE_FUNCTIONS_N = {"LAST_N_DAYS", "NEXT_N_DAYS"}
FIELDS_MACROS = {"ALL", "STANDARD", "CUSTOM"}


def malformed(message: str) -> ApiError:
    """400 MALFORMED_QUERY."""
    return ApiError(400, "MALFORMED_QUERY", message)


@dataclass(frozen=True)
class Token:
    """One lexical token."""

    kind: str  # string, number, date, datetime, ident, op, punct, eof
    value: Any
    pos: int

    @property
    def upper(self) -> str:
        """Upper-cased identifier text ('' for non-identifiers)."""
        return self.value.upper() if self.kind == "ident" else ""


def _read_string(text: str, start: int) -> tuple[str, int]:
    """Decode the literal starting at the quote at ``start``; returns (value, end index)."""
    out: list[str] = []
    i = start + 1
    while i < len(text):
        char = text[i]
        if char == "\\":
            if i + 1 >= len(text):
                break
            escaped = text[i + 1]
            if escaped not in _ESCAPES:
                raise malformed(
                    f"Invalid string literal at position {start}: illegal escape sequence '\\{escaped}'"
                )
            out.append(_ESCAPES[escaped])
            i += 2
            continue
        if char == "'":
            return "".join(out), i + 1
        out.append(char)
        i += 1
    raise malformed(f"unterminated string literal starting at position {start}")


def tokenize(text: str) -> list[Token]:
    """Split SOQL into tokens."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        if text[pos] == "'":
            value, end = _read_string(text, pos)
            tokens.append(Token("string", value, pos))
            pos = end
            continue
        match = _TOKEN_RE.match(text, pos)
        if not match:
            raise malformed(f"unexpected token: '{text[pos : pos + 20]}' at position {pos}")
        kind = match.lastgroup or ""
        if kind != "ws":
            tokens.append(Token(kind, match.group(), pos))
        pos = match.end()
    tokens.append(Token("eof", None, len(text)))
    return tokens


@dataclass(frozen=True)
class Literal:
    """A value in a filter: kind is string, number, boolean, null, date, datetime or date_fn."""

    kind: str
    value: Any


@dataclass(frozen=True)
class Path:
    """A field reference such as ``Name`` or ``Contact__r.Account.Name`` (parts as written)."""

    parts: tuple[str, ...]

    @property
    def text(self) -> str:
        """Dotted form as written."""
        return ".".join(self.parts)


@dataclass(frozen=True)
class Comparison:
    """``path op value``; op is one of = != < <= > >= LIKE."""

    path: Path
    op: str
    value: Literal


@dataclass(frozen=True)
class InList:
    """``path [NOT] IN (values)``."""

    path: Path
    values: tuple[Literal, ...]
    negated: bool


@dataclass(frozen=True)
class BoolOp:
    """``a AND b AND c`` or ``a OR b``."""

    op: str
    items: tuple[Any, ...]


@dataclass(frozen=True)
class Not:
    """``NOT condition``."""

    item: Any


@dataclass(frozen=True)
class OrderItem:
    """One ``ORDER BY`` term."""

    path: Path
    descending: bool = False
    nulls_last: bool | None = None


@dataclass
class Query:
    """A parsed SOQL statement."""

    object_name: str
    fields: list[Path] = field(default_factory=list)
    fields_macro: str | None = None
    count_only: bool = False
    where: Any = None
    order_by: list[OrderItem] = field(default_factory=list)
    limit: int | None = None
    offset: int | None = None


class Parser:
    """Recursive-descent parser over :func:`tokenize` output."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    @property
    def tok(self) -> Token:
        """The current token."""
        return self.tokens[self.i]

    def advance(self) -> Token:
        """Consume and return the current token."""
        token = self.tokens[self.i]
        self.i += 1
        return token

    def unexpected(self) -> ApiError:
        """MALFORMED_QUERY naming the current token."""
        token = self.tok
        shown = "end of query" if token.kind == "eof" else repr(token.value)
        return malformed(f"unexpected token: {shown} at position {token.pos}")

    def accept_kw(self, *words: str) -> bool:
        """Consume the keyword sequence if it is next."""
        for offset, word in enumerate(words):
            token = self.tokens[self.i + offset] if self.i + offset < len(self.tokens) else None
            if token is None or token.upper != word:
                return False
        self.i += len(words)
        return True

    def expect_kw(self, word: str) -> None:
        """Consume ``word`` or fail."""
        if not self.accept_kw(word):
            raise self.unexpected()

    def expect_punct(self, char: str) -> None:
        """Consume ``char`` or fail."""
        if self.tok.kind == "punct" and self.tok.value == char:
            self.advance()
            return
        raise self.unexpected()

    def parse(self) -> Query:
        """Parse the whole statement."""
        self.expect_kw("SELECT")
        fields, macro, count_only = self._select_list()
        self.expect_kw("FROM")
        # "Order" is an object name as well as a keyword (FROM Order ORDER BY ...).
        if self.tok.kind != "ident" or "." in self.tok.value or self.tok.upper in KEYWORDS - {"ORDER"}:
            raise self.unexpected()
        query = Query(
            object_name=self.advance().value, fields=fields, fields_macro=macro, count_only=count_only
        )
        if self.tok.kind == "ident" and self.tok.upper not in KEYWORDS:
            raise malformed("object aliases are not supported by the crm_sync sandbox")
        if self.accept_kw("WHERE"):
            query.where = self._condition()
        if self.tok.upper in {"GROUP", "HAVING", "WITH", "FOR", "USING"}:
            raise malformed(f"{self.tok.upper} is not supported by the crm_sync sandbox")
        if self.accept_kw("ORDER", "BY"):
            query.order_by = self._order_list()
        if self.accept_kw("LIMIT"):
            query.limit = self._int()
        if self.accept_kw("OFFSET"):
            query.offset = self._int()
        if self.tok.kind != "eof":
            raise self.unexpected()
        return query

    def _int(self) -> int:
        token = self.advance()
        if token.kind != "number" or not re.fullmatch(r"\d+", token.value):
            self.i -= 1
            raise self.unexpected()
        return int(token.value)

    def _select_list(self) -> tuple[list[Path], str | None, bool]:
        fields: list[Path] = []
        macro = None
        count_only = False
        while True:
            token = self.tok
            if token.kind == "punct" and token.value == "(":
                raise malformed("sub-queries are not supported by the crm_sync sandbox")
            if token.kind != "ident" or token.upper in KEYWORDS - {"FIRST", "LAST"}:
                raise self.unexpected()
            self.advance()
            if self.tok.kind == "punct" and self.tok.value == "(":
                self.advance()
                name = token.upper
                if name == "COUNT" and self.tok.kind == "punct" and self.tok.value == ")":
                    self.advance()
                    count_only = True
                elif name == "FIELDS" and self.tok.upper in FIELDS_MACROS:
                    macro = self.advance().upper
                    self.expect_punct(")")
                else:
                    raise malformed(f"function {token.value}() is not supported by the crm_sync sandbox")
            else:
                fields.append(Path(tuple(token.value.split("."))))
            if self.tok.kind == "punct" and self.tok.value == ",":
                self.advance()
                continue
            break
        if count_only and (fields or macro):
            raise malformed("COUNT() must be the only element in the SELECT list")
        return fields, macro, count_only

    def _condition(self) -> Any:
        items = [self._term()]
        connector = None
        while self.tok.upper in {"AND", "OR"}:
            word = self.tok.upper
            if connector is not None and word != connector:
                raise malformed(
                    f"unexpected token: '{word}' at position {self.tok.pos}: "
                    "use parentheses to mix AND and OR"
                )
            connector = word
            self.advance()
            items.append(self._term())
        return items[0] if connector is None else BoolOp(connector, tuple(items))

    def _term(self) -> Any:
        if self.accept_kw("NOT"):
            return Not(self._term())
        if self.tok.kind == "punct" and self.tok.value == "(":
            self.advance()
            inner = self._condition()
            self.expect_punct(")")
            return inner
        return self._predicate()

    def _predicate(self) -> Any:
        token = self.tok
        if token.kind != "ident" or token.upper in KEYWORDS:
            raise self.unexpected()
        path = Path(tuple(self.advance().value.split(".")))
        if self.accept_kw("NOT", "IN"):
            return InList(path, self._value_list(), negated=True)
        if self.accept_kw("IN"):
            return InList(path, self._value_list(), negated=False)
        if self.accept_kw("LIKE"):
            value = self._value()
            if value.kind != "string":
                raise malformed(f"LIKE on {path.text} needs a string literal")
            return Comparison(path, "LIKE", value)
        if self.tok.upper in {"INCLUDES", "EXCLUDES"}:
            raise malformed(f"{self.tok.upper} is not supported by the crm_sync sandbox")
        if self.tok.kind != "op":
            raise self.unexpected()
        op = self.advance().value
        return Comparison(path, "!=" if op == "<>" else op, self._value())

    def _order_list(self) -> list[OrderItem]:
        items = []
        while True:
            token = self.tok
            if token.kind != "ident" or token.upper in KEYWORDS:
                raise self.unexpected()
            path = Path(tuple(self.advance().value.split(".")))
            descending = False
            if self.accept_kw("DESC"):
                descending = True
            else:
                self.accept_kw("ASC")
            nulls_last = None
            if self.accept_kw("NULLS", "FIRST"):
                nulls_last = False
            elif self.accept_kw("NULLS", "LAST"):
                nulls_last = True
            items.append(OrderItem(path, descending, nulls_last))
            if self.tok.kind == "punct" and self.tok.value == ",":
                self.advance()
                continue
            return items

    def _value_list(self) -> tuple[Literal, ...]:
        if self.tok.kind == "punct" and self.tok.value == "(" and self.tokens[self.i + 1].upper == "SELECT":
            raise malformed("semi-join sub-selects are not supported by the crm_sync sandbox")
        self.expect_punct("(")
        values = [self._value()]
        while self.tok.kind == "punct" and self.tok.value == ",":
            self.advance()
            values.append(self._value())
        self.expect_punct(")")
        return tuple(values)

    def _value(self) -> Literal:
        token = self.advance()
        if token.kind == "string":
            return Literal("string", token.value)
        if token.kind == "number":
            return Literal("number", float(token.value) if "." in token.value else int(token.value))
        if token.kind in {"date", "datetime"}:
            return Literal(token.kind, token.value)
        if token.kind == "ident":
            word = token.upper
            if word in {"TRUE", "FALSE"}:
                return Literal("boolean", word == "TRUE")
            if word == "NULL":
                return Literal("null", None)
            if word in DATE_FUNCTIONS:
                return Literal("date_fn", (word, 0))
            if word in DATE_FUNCTIONS_N:
                self.expect_punct(":")
                return Literal("date_fn", (word, self._int()))
        self.i -= 1
        raise self.unexpected()


def parse(text: str) -> Query:
    """Parse a SOQL statement; raises ApiError(400, MALFORMED_QUERY) on bad syntax."""
    if not text or not text.strip():
        raise malformed("empty query")
    return Parser(text).parse()

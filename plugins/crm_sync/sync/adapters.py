"""Named value adapters for the field-mapping DSL, and the registry mapping files refer to.

An adapter is registered once, by name, with :func:`adapter`::

    @adapter("strip")
    def strip(value: Any) -> Any: ...

    @adapter("truncate", factory=True)         # takes args from the mapping file
    def truncate(*, length: int) -> Callable[[Any], Any]: ...

    @adapter("not_active", applies_to="record", reads=("active_flag",))
    def not_active(record: Mapping[str, Any]) -> Any: ...   # a transformer

A factory is called once, when the mapping file is loaded, with the ``args`` the file gives;
it checks them (raising ``ValueError``/``TypeError``) and returns the adapter. A value
adapter receives one value (``None`` when the source field is missing); a record adapter
(a transformer) receives the whole source record and declares the fields it ``reads`` so
that extracts can select them.

An adapter refuses a bad value by raising :class:`AdapterError` with its own code; the
mapping turns that into a per-record rejection. Messages must never contain the value.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import difflib
import inspect
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

import phonenumbers

from crm_sync.exceptions import ConfigurationError
from crm_sync.sync.countries import COUNTRY_NAMES

__all__ = [
    "ADAPTERS",
    "AdapterDef",
    "AdapterError",
    "AdapterRegistry",
    "AppliesTo",
    "adapter",
    "is_blank",
    "lookup_tables",
]

AppliesTo = Literal["value", "record", "any"]
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class AdapterError(ValueError):
    """An adapter refuses a value; ``code`` goes to the ledger, ``message`` never holds the value."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def is_blank(value: Any) -> bool:
    """Return True for None, NaN/NaT, whitespace-only text and empty collections."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, float | Decimal | datetime):
        # NaN (pandas' missing number) and NaT (its missing timestamp) are never equal to themselves.
        return value != value
    if isinstance(value, list | tuple | dict | set | frozenset):
        return not value
    return False


@dataclass(frozen=True)
class AdapterDef:
    """One registered adapter.

    Attributes:
        name: the name mapping files use.
        func: the adapter itself, or for a factory the function that builds it from args.
        factory: True when ``func`` takes the mapping file's ``args`` and returns the adapter.
        applies_to: ``value`` (pre/post adapter), ``record`` (transformer) or ``any``.
        reads: for record adapters, the source fields (dotted paths) they read.
    """

    name: str
    func: Callable[..., Any]
    factory: bool
    applies_to: AppliesTo
    reads: tuple[str, ...]

    @property
    def origin(self) -> str:
        """Where the adapter is defined, as ``module.qualname``."""
        return f"{self.func.__module__}.{self.func.__qualname__}"

    def arg_problems(self, args: Mapping[str, Any]) -> list[tuple[str | None, str]]:
        """Check ``args`` against the factory's signature without calling it.

        Returns:
            ``(arg name or None, message)`` pairs; empty when the args fit.
        """
        if not self.factory:
            if args:
                return [(None, f"adapter {self.name!r} takes no args")]
            return []
        params = inspect.signature(self.func).parameters
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            return []
        problems: list[tuple[str | None, str]] = []
        suggested: set[str] = set()
        for arg in args:
            if arg not in params:
                close = difflib.get_close_matches(str(arg), list(params), n=3, cutoff=0.6)
                suggested.update(close)
                hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
                problems.append((arg, f"unknown arg {arg!r} for adapter {self.name!r}{hint}"))
        # A missing arg already offered as the fix for a misspelt one is not a second mistake.
        missing = [
            n
            for n, p in params.items()
            if p.default is inspect.Parameter.empty and n not in args and n not in suggested
        ]
        if missing:
            names = ", ".join(repr(n) for n in missing)
            problems.append((None, f"adapter {self.name!r} needs args: {names}"))
        return problems

    def build(self, args: Mapping[str, Any]) -> Callable[[Any], Any]:
        """Return the adapter to call, building it from ``args`` when this is a factory.

        Raises:
            ValueError, TypeError: the factory refuses the args (raised at load time).
        """
        return self.func(**args) if self.factory else self.func


class AdapterRegistry:
    """Adapters by name. Mapping files are checked against a registry when they load."""

    def __init__(self, defs: Mapping[str, AdapterDef] | None = None) -> None:
        self._defs: dict[str, AdapterDef] = dict(defs or {})

    def register(
        self,
        name: str,
        *,
        factory: bool = False,
        applies_to: AppliesTo = "value",
        reads: Collection[str] | None = None,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Return a decorator that registers a function under ``name``.

        Args:
            name: lower_snake_case name used in mapping files; unique in the registry.
            factory: the function takes the file's ``args`` (keyword arguments) and
                returns the adapter.
            applies_to: ``value`` for pre/post adapters, ``record`` for transformers,
                ``any`` for both (e.g. ``constant``).
            reads: required for record adapters: the source fields they read.

        Raises:
            ValueError: a bad name, a bad signature, or the name is taken by another function.
        """
        if not _NAME.match(name):
            raise ValueError(f"adapter name {name!r} must be lower_snake_case")
        if applies_to == "record" and reads is None:
            raise ValueError(f"record adapter {name!r} must declare the source fields it reads")
        if applies_to != "record" and reads is not None:
            raise ValueError(f"only record adapters declare reads; {name!r} applies to {applies_to}")

        def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
            _check_signature(name, func, factory=factory)
            new = AdapterDef(name, func, factory, applies_to, tuple(reads or ()))
            old = self._defs.get(name)
            # The same function registered again (a module imported twice) is harmless.
            if old is not None and old.origin != new.origin:
                raise ValueError(f"adapter {name!r} is already registered by {old.origin}")
            self._defs[name] = new
            return func

        return decorate

    def get(self, name: str) -> AdapterDef:
        """Return the adapter registered under ``name``; KeyError if there is none."""
        return self._defs[name]

    def suggest(self, name: str) -> list[str]:
        """Return up to three registered names close to ``name``."""
        return difflib.get_close_matches(name, self._defs, n=3, cutoff=0.6)

    def copy(self) -> AdapterRegistry:
        """Return an independent registry holding the same adapters."""
        return AdapterRegistry(self._defs)

    def __contains__(self, name: object) -> bool:
        return name in self._defs

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._defs))

    def __len__(self) -> int:
        return len(self._defs)


def _check_signature(name: str, func: Callable[..., Any], *, factory: bool) -> None:
    """Refuse functions that cannot be called the way the mapping will call them."""
    params = inspect.signature(func).parameters.values()
    if factory:
        if any(p.kind in (p.POSITIONAL_ONLY, p.VAR_POSITIONAL) for p in params):
            raise ValueError(f"factory adapter {name!r} must take its args by keyword")
        return
    try:
        inspect.signature(func).bind(None)
    except TypeError:
        raise ValueError(f"adapter {name!r} must take exactly one argument") from None


ADAPTERS = AdapterRegistry()
"""The default registry: built-ins below, plus whatever integrations register."""


def adapter(
    name: str,
    *,
    factory: bool = False,
    applies_to: AppliesTo = "value",
    reads: Collection[str] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a function in the default registry; see :meth:`AdapterRegistry.register`."""
    return ADAPTERS.register(name, factory=factory, applies_to=applies_to, reads=reads)


# -- helpers ---------------------------------------------------------------------------------


def _type_error(expected: str, value: Any) -> AdapterError:
    return AdapterError("INVALID_TYPE", f"expected {expected}, got {type(value).__name__}")


def _as_date(value: Any) -> date:
    """Read a date from a date, a datetime or an ISO 8601 string."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        raise _type_error("a date, a datetime or ISO 8601 text", value)
    text = value.strip()
    try:
        return date.fromisoformat(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text).date()
    except ValueError:
        raise AdapterError("INVALID_DATE", "not an ISO 8601 date") from None


def _as_decimal(value: Any) -> Decimal:
    """Read a finite number from a number or its text."""
    if isinstance(value, bool):
        return Decimal(int(value))
    if isinstance(value, int | float | Decimal):
        number = Decimal(value)
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise AdapterError("INVALID_NUMBER", "not a number") from None
    else:
        raise _type_error("a number or text", value)
    if not number.is_finite():
        raise AdapterError("INVALID_NUMBER", "not a finite number")
    return number


def _number_text(value: Any) -> str:
    """Text of a phone-like value; spreadsheets hand over whole numbers as floats."""
    if isinstance(value, bool):
        raise _type_error("text or a number", value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float | Decimal):
        number = _as_decimal(value)
        return str(int(number)) if number % 1 == 0 else str(value)
    if isinstance(value, str):
        return value
    raise _type_error("text or a number", value)


def _positive_int(arg: str, value: Any, *, maximum: int | None = None) -> int:
    """Validate an integer factory arg."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{arg} must be a positive integer")
    if maximum is not None and value > maximum:
        raise ValueError(f"{arg} must be between 1 and {maximum}")
    return value


_TRUE = frozenset({"true", "t", "yes", "y", "1", "on"})
_FALSE = frozenset({"false", "f", "no", "n", "0", "off"})
_MISSING: Any = object()


# -- text ------------------------------------------------------------------------------------


@adapter("strip")
def strip(value: Any) -> Any:
    """Trim surrounding whitespace from text; other values pass through."""
    return value.strip() if isinstance(value, str) else value


@adapter("lower")
def lower(value: Any) -> Any:
    """Lower-case text; other values pass through."""
    return value.lower() if isinstance(value, str) else value


@adapter("upper")
def upper(value: Any) -> Any:
    """Upper-case text; other values pass through."""
    return value.upper() if isinstance(value, str) else value


@adapter("title")
def title(value: Any) -> Any:
    """Capitalise each word of text ("o'neil" -> "O'Neil"); other values pass through."""
    if not isinstance(value, str):
        return value
    # str.title() capitalises after every apostrophe, which breaks possessives ("Ann'S").
    return re.sub(r"(?<=\w)'S\b", "'s", value.title())


@adapter("none_if_blank")
def none_if_blank(value: Any) -> Any:
    """Turn blank values (empty or whitespace text, NaN, empty collections) into None."""
    return None if is_blank(value) else value


@adapter("truncate", factory=True)
def truncate(*, length: int) -> Callable[[Any], Any]:
    """Cut text to at most ``length`` characters; other values pass through."""
    limit = _positive_int("length", length)

    def cut(value: Any) -> Any:
        return value[:limit] if isinstance(value, str) else value

    return cut


@adapter("split_first")
def split_first(value: Any) -> Any:
    """Return the first word of a full name ("Ann Marie Smith" -> "Ann")."""
    if is_blank(value):
        return None
    if not isinstance(value, str):
        raise _type_error("text", value)
    return value.split()[0]


@adapter("split_last")
def split_last(value: Any) -> Any:
    """Return what follows the first word of a full name ("Ann Marie Smith" -> "Marie Smith")."""
    if is_blank(value):
        return None
    if not isinstance(value, str):
        raise _type_error("text", value)
    words = value.split()
    return " ".join(words[1:]) or None


@adapter("digits_only")
def digits_only(value: Any) -> Any:
    """Keep only the digits of a value (phones for matching); None when none are left."""
    if is_blank(value):
        return None
    return "".join(ch for ch in _number_text(value) if ch.isdigit()) or None


@adapter("email_normalise")
def email_normalise(value: Any) -> Any:
    """Trim and lower-case an email address."""
    if is_blank(value):
        return None
    if not isinstance(value, str):
        raise _type_error("text", value)
    return value.strip().lower()


# -- numbers and booleans --------------------------------------------------------------------


@adapter("to_int")
def to_int(value: Any) -> Any:
    """Convert a number or its text to int; refuse fractions rather than round them."""
    if is_blank(value):
        return None
    number = _as_decimal(value)
    if number % 1 != 0:
        raise AdapterError("INVALID_NUMBER", "not a whole number")
    return int(number)


@adapter("to_float")
def to_float(value: Any) -> Any:
    """Convert a number or its text to a finite float."""
    if is_blank(value):
        return None
    return float(_as_decimal(value))


@adapter("to_bool")
def to_bool(value: Any) -> Any:
    """Convert true/false, yes/no, y/n, on/off, 1/0 (any case) to a bool."""
    if is_blank(value):
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float | Decimal) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise AdapterError("INVALID_BOOLEAN", "not a boolean")


@adapter("not")
def negate(value: Any) -> Any:
    """Negate a boolean (read as :func:`to_bool` does); None stays None."""
    flag = to_bool(value)
    return None if flag is None else not flag


# -- dates -----------------------------------------------------------------------------------


@adapter("iso_date")
def iso_date(value: Any) -> Any:
    """Format a date, datetime or ISO 8601 text as 'YYYY-MM-DD'."""
    return None if is_blank(value) else _as_date(value).isoformat()


@adapter("iso_datetime")
def iso_datetime(value: Any) -> Any:
    """Format a datetime, date (midnight) or ISO 8601 text as ISO 8601, keeping any offset."""
    if is_blank(value):
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return datetime.combine(value, time()).isoformat()
    if not isinstance(value, str):
        raise _type_error("a datetime, a date or ISO 8601 text", value)
    try:
        return datetime.fromisoformat(value.strip()).isoformat()
    except ValueError:
        raise AdapterError("INVALID_DATE", "not an ISO 8601 date-time") from None


@adapter("fiscal_quarter", factory=True)
def fiscal_quarter(*, fiscal_year_start_month: int = 1) -> Callable[[Any], Any]:
    """Return the fiscal quarter (1-4) of a date, for a year starting in the given month."""
    start = _positive_int("fiscal_year_start_month", fiscal_year_start_month, maximum=12)

    def quarter(value: Any) -> Any:
        if is_blank(value):
            return None
        return (_as_date(value).month - start) % 12 // 3 + 1

    return quarter


@adapter("fiscal_year", factory=True)
def fiscal_year(*, fiscal_year_start_month: int = 1) -> Callable[[Any], Any]:
    """Return the fiscal year of a date, named by the calendar year in which it ends."""
    start = _positive_int("fiscal_year_start_month", fiscal_year_start_month, maximum=12)

    def year(value: Any) -> Any:
        if is_blank(value):
            return None
        day = _as_date(value)
        return day.year + 1 if start > 1 and day.month >= start else day.year

    return year


# -- codes, phones, lookups ------------------------------------------------------------------


@adapter("iso_country_name")
def iso_country_name(value: Any) -> Any:
    """Turn an ISO 3166-1 alpha-2 code (any case) into its English short name.

    Text that is not two letters long is taken to be a name already and passes through.
    """
    if is_blank(value):
        return None
    if not isinstance(value, str):
        raise _type_error("text", value)
    text = value.strip()
    if len(text) != 2:
        return value
    try:
        return COUNTRY_NAMES[text.upper()]
    except KeyError:
        raise AdapterError("UNKNOWN_COUNTRY_CODE", "not an ISO 3166-1 alpha-2 code") from None


@adapter("e164_phone", factory=True)
def e164_phone(*, default_region: str | None = None) -> Callable[[Any], Any]:
    """Format a phone number as E.164 ('+14155550123'); refuse invalid numbers (INVALID_PHONE).

    Args:
        default_region: ISO 3166-1 alpha-2 region for numbers written without a country
            code; without it, numbers must start with '+'.
    """
    region = None
    if default_region is not None:
        if not isinstance(default_region, str):
            raise TypeError("default_region must be a two-letter region code")
        region = default_region.strip().upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError("default_region is not a region phonenumbers knows")

    def format_phone(value: Any) -> Any:
        if is_blank(value):
            return None
        try:
            number = phonenumbers.parse(_number_text(value), region)
        except phonenumbers.NumberParseException:
            raise AdapterError("INVALID_PHONE", "not a phone number") from None
        except AdapterError as exc:
            raise AdapterError("INVALID_PHONE", exc.message) from None
        if not phonenumbers.is_valid_number(number):
            raise AdapterError("INVALID_PHONE", "not a valid phone number")
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)

    return format_phone


@adapter("lookup", factory=True)
def lookup(
    *, values: Mapping[Any, Any], fallback: Any = _MISSING, ignore_case: bool = False
) -> Callable[[Any], Any]:
    """Translate a value through an inline table.

    Args:
        values: source value -> target value.
        fallback: result for a blank value or one not in ``values``; without it a value
            not in the table rejects the record (LOOKUP_MISS) and a blank gives None.
        ignore_case: compare text keys case-insensitively.
    """
    if not isinstance(values, Mapping) or not values:
        raise TypeError("values must be a non-empty mapping")
    if not isinstance(ignore_case, bool):
        raise TypeError("ignore_case must be true or false")

    def fold(key: Any) -> Any:
        return key.casefold() if ignore_case and isinstance(key, str) else key

    table = {fold(k): v for k, v in values.items()}
    if len(table) != len(values):
        raise ValueError("values has keys that differ only by case")

    def translate(value: Any) -> Any:
        if is_blank(value):
            return None if fallback is _MISSING else fallback
        try:
            return table[fold(value)]
        except (KeyError, TypeError):
            if fallback is _MISSING:
                raise AdapterError("LOOKUP_MISS", "value not in the lookup table") from None
            return fallback

    return translate


@adapter("constant", factory=True, applies_to="any")
def constant(*, value: Any) -> Callable[[Any], Any]:
    """Always return ``value``; as a transformer it fills a field from nothing."""

    def fixed(_: Any) -> Any:
        # A list or mapping is copied so that one payload's edits never reach the next.
        return copy.deepcopy(value) if isinstance(value, list | dict) else value

    return fixed


@adapter("prefix", factory=True)
def prefix(*, text: str) -> Callable[[Any], Any]:
    """Put ``text`` before the value (numbers written as text): ``7`` -> ``pd-deal-7``."""
    if not isinstance(text, str) or not text:
        raise TypeError("text must be non-empty text")

    def prepend(value: Any) -> Any:
        if is_blank(value):
            return None
        number = isinstance(value, int | float | Decimal) and not isinstance(value, bool)
        return f"{text}{_number_text(value) if number else str(value).strip()}"

    return prepend


_DOMAIN = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}$")


@adapter("domain")
def domain(value: Any) -> Any:
    """The host of a web address or e-mail address, lower case, without ``www.``.

    ``https://www.Acme.com/about`` -> ``acme.com``; ``ann@sales.acme.com`` -> ``sales.acme.com``.
    """
    if is_blank(value):
        return None
    if not isinstance(value, str):
        raise _type_error("a web or e-mail address", value)
    text = value.strip().lower()
    host = text.rsplit("@", 1)[1] if "@" in text and "/" not in text else text
    host = re.sub(r"^[a-z][a-z0-9+.-]*://", "", host).split("/", 1)[0].split("?", 1)[0]
    host = host.rsplit("@", 1)[-1].split(":", 1)[0].removeprefix("www.")
    if not _DOMAIN.match(host):
        raise AdapterError("INVALID_DOMAIN", "not a web or e-mail address")
    return host


# Run-time tables (e.g. Pipedrive user ids by name, read from the API once per run) reach the
# pure adapters through a context variable: the integration reads them, then maps its records
# inside ``with lookup_tables(...)``. A contextvar keeps concurrent tasks' tables apart.
_TABLES: contextvars.ContextVar[Mapping[str, Mapping[Any, Any]] | None] = contextvars.ContextVar(
    "crm_sync_lookup_tables", default=None
)


@contextlib.contextmanager
def lookup_tables(**tables: Mapping[Any, Any]) -> Iterator[None]:
    """Make run-time tables available to ``table_lookup`` adapters inside the block.

    Args:
        **tables: table name -> ``{source value: target value}``, e.g. ``pipedrive_users``.
    """
    current = dict(_TABLES.get() or {})
    token = _TABLES.set({**current, **{name: dict(table) for name, table in tables.items()}})
    try:
        yield
    finally:
        _TABLES.reset(token)


@adapter("table_lookup", factory=True)
def table_lookup(*, table: str, fallback: Any = _MISSING, ignore_case: bool = True) -> Callable[[Any], Any]:
    """Translate a value through a table read at run time (see :func:`lookup_tables`).

    Args:
        table: the table's name, as the integration supplies it.
        fallback: result for a blank value or a miss (e.g. the bot user id); without it a miss
            rejects the record (LOOKUP_MISS) and a blank gives None.
        ignore_case: compare text keys case-insensitively (default true: names typed by people).
    """
    if not isinstance(table, str) or not table:
        raise TypeError("table must be a non-empty name")
    if not isinstance(ignore_case, bool):
        raise TypeError("ignore_case must be true or false")

    def fold(key: Any) -> Any:
        return " ".join(key.split()).casefold() if ignore_case and isinstance(key, str) else key

    def translate(value: Any) -> Any:
        tables = _TABLES.get() or {}
        if table not in tables:
            # A programming error, not bad data: the integration forgot to supply the table.
            raise ConfigurationError(f"lookup table {table!r} was not supplied (use lookup_tables)")
        if is_blank(value):
            return None if fallback is _MISSING else fallback
        folded = {fold(k): v for k, v in tables[table].items()}
        try:
            return folded[fold(value)]
        except (KeyError, TypeError):
            if fallback is _MISSING:
                raise AdapterError("LOOKUP_MISS", f"value not in the run-time table {table!r}") from None
            return fallback

    return translate

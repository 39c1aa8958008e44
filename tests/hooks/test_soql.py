"""Unit tests for crm_sync.hooks.soql: literals, identifiers, ids and the SELECT builder."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm_sync.hooks import soql

# The escapes a SOQL string literal may contain (SOQL reference, quoted string escapes).
_UNESCAPE = {
    "n": "\n",
    "N": "\n",
    "r": "\r",
    "R": "\r",
    "t": "\t",
    "T": "\t",
    "b": "\b",
    "B": "\b",
    "f": "\f",
    "F": "\f",
    '"': '"',
    "'": "'",
    "\\": "\\",
}
_LIKE_UNESCAPE = {"%": "%", "_": "_"}


def read_literal(text: str, start: int = 0, *, like: bool = False) -> tuple[str, int]:
    """Parse the SOQL string literal opening at text[start]; return (value, index after it).

    Raises ValueError on an invalid escape or an unterminated literal, as Salesforce would.
    """
    assert text[start] == "'"
    out: list[str] = []
    i = start + 1
    table = {**_UNESCAPE, **_LIKE_UNESCAPE} if like else _UNESCAPE
    while i < len(text):
        char = text[i]
        if char == "\\":
            if i + 1 >= len(text) or text[i + 1] not in table:
                raise ValueError(f"invalid escape at {i}")
            nxt = text[i + 1]
            out.append("\\" + nxt if like and nxt in _LIKE_UNESCAPE else table[nxt])
            i += 2
        elif char == "'":
            return "".join(out), i + 1
        else:
            out.append(char)
            i += 1
    raise ValueError("unterminated literal")


@given(st.text())
def test_quote_round_trips_and_only_its_own_quote_ends_it(value: str) -> None:
    literal = soql.quote(value)
    parsed, end = read_literal(literal)
    assert parsed == value
    assert end == len(literal)  # the literal ends at its own closing quote, nowhere earlier


@given(st.text(), st.text(alphabet="' =ORAND()", max_size=12))
def test_quoted_value_cannot_change_the_query(value: str, tail: str) -> None:
    query = f"SELECT Id FROM Contact WHERE Name = {soql.quote(value)} AND Email != null"
    start = query.index("= '") + 2
    parsed, end = read_literal(query, start)
    assert parsed == value
    assert query[end:] == " AND Email != null"


def test_quote_escapes_every_special_character() -> None:
    assert soql.quote("a'b\"c\\d\ne\rf\tg\bh\fi") == "'a\\'b\\\"c\\\\d\\ne\\rf\\tg\\bh\\fi'"
    # LIKE wildcards are plain characters outside LIKE: escaping them there is an error in SOQL
    assert soql.quote("50%_off") == "'50%_off'"


def test_quote_scalars() -> None:
    assert soql.quote(None) == "null"
    assert soql.quote(True) == "true"
    assert soql.quote(False) == "false"
    assert soql.quote(42) == "42"
    assert soql.quote(-3.5) == "-3.5"
    assert soql.quote(1e-7) == "0.0000001"
    assert soql.quote(1e20) == "100000000000000000000"
    assert soql.quote(Decimal("12.50")) == "12.50"
    assert soql.quote(date(2024, 2, 29)) == "2024-02-29"
    tz = timezone(timedelta(hours=2))
    assert soql.quote(datetime(2024, 1, 1, 1, 30, 5, 999, tzinfo=tz)) == "2023-12-31T23:30:05Z"
    assert soql.quote(datetime(2024, 1, 1, tzinfo=UTC)) == "2024-01-01T00:00:00Z"


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), Decimal("NaN")])
def test_quote_refuses_non_finite_numbers(bad: object) -> None:
    with pytest.raises(ValueError, match="no literal"):
        soql.quote(bad)


def test_quote_refuses_naive_datetimes_and_unknown_types() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        soql.quote(datetime(2024, 1, 1))
    with pytest.raises(TypeError, match="list"):
        soql.quote(["a"])
    with pytest.raises(TypeError, match="bytes"):
        soql.quote(b"a")


@given(st.text())
def test_like_pattern_matches_text_literally(text: str) -> None:
    literal = soql.like_pattern(text, match="exact")
    parsed, end = read_literal(literal, like=True)
    assert end == len(literal)
    # every % and _ of the input is escaped, so the only wildcards are the ones we add
    assert parsed.replace("\\%", "").replace("\\_", "").count("%") == 0
    assert parsed.replace("\\%", "%").replace("\\_", "_") == text


def test_like_pattern_modes() -> None:
    assert soql.like_pattern("50%_x") == "'%50\\%\\_x%'"
    assert soql.like_pattern("ab", match="startswith") == "'ab%'"
    assert soql.like_pattern("ab", match="endswith") == "'%ab'"
    assert soql.like_pattern("o'k", match="exact") == "'o\\'k'"


def test_soql_in() -> None:
    assert soql.soql_in(["a", "b'", 3, None]) == "('a','b\\'',3,null)"
    with pytest.raises(ValueError, match="at least one value"):
        soql.soql_in([])


@pytest.mark.parametrize(
    "good", ["Contact", "HP_PMI_ID__c", "Account.Name", "ns__Obj__c", "Owner.Manager.Email"]
)
def test_identifier_accepts_api_names(good: str) -> None:
    assert soql.identifier(good) == good


@pytest.mark.parametrize(
    "bad", ["", "Name FROM User", "Name'", "1Field", "Name--", "Id,Name", "a.", ".a", "Name)", "_x"]
)
def test_identifier_refuses_anything_else(bad: str) -> None:
    with pytest.raises(ValueError, match="not a Salesforce API name"):
        soql.identifier(bad)


# Ids from Salesforce documentation examples and their case-safe 18-character forms.
@pytest.mark.parametrize(
    ("id15", "id18"),
    [
        ("001A0000006Vm9r", "001A0000006Vm9rIAC"),
        ("003D000000QOW1c", "003D000000QOW1cIAH"),
        ("0010000000aaaaa", "0010000000aaaaaAAA"),
    ],
)
def test_sf_id_checksum(id15: str, id18: str) -> None:
    assert soql.sf_id_18(id15) == id18
    assert soql.validate_sf_id(id18) == id18
    assert soql.validate_sf_id(id15) == id15
    assert soql.validate_sf_id(id18[:15] + id18[15:].lower()) == id18[:15] + id18[15:].lower()


def test_validate_sf_id_errors_say_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="12 characters, expected 15 or 18"):
        soql.validate_sf_id("001A0000006V")
    with pytest.raises(ValueError, match="only letters and digits"):
        soql.validate_sf_id("001A000000' OR1")
    with pytest.raises(ValueError, match="checksum suffix 'AAA'"):
        soql.validate_sf_id("001a0000006Vm9rAAA")  # lower-cased by a spreadsheet
    with pytest.raises(TypeError, match="must be a string"):
        soql.validate_sf_id(1234)  # type: ignore[arg-type]


@given(
    st.text(
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", min_size=15, max_size=15
    )
)
def test_sf_id_18_validates_its_own_output(id15: str) -> None:
    id18 = soql.sf_id_18(id15)
    assert soql.validate_sf_id(id18) == id18
    flipped = id15.swapcase()
    if flipped != id15:
        with pytest.raises(ValueError, match="checksum"):
            soql.validate_sf_id(flipped + id18[15:])


def test_select_builds_a_safe_query() -> None:
    query = soql.select(
        "Contact",
        ["Id", "Account.Name"],
        where={"HP_PMI_ID__c": ["P1", "x' OR Name != '"], "Email": None, "IsDeleted": False},
        order_by=["LastName", ("CreatedDate", "DESC")],
        limit=10,
    )
    assert query == (
        "SELECT Id, Account.Name FROM Contact WHERE HP_PMI_ID__c IN ('P1','x\\' OR Name != \\'') "
        "AND Email = null AND IsDeleted = false ORDER BY LastName ASC, CreatedDate DESC LIMIT 10"
    )
    assert isinstance(query, soql.Fragment)


def test_select_with_fragment_and_count() -> None:
    since = datetime(2024, 5, 1, tzinfo=UTC)
    where = soql.fragment("LastModifiedDate >= {since} AND Name LIKE {}", "a'", since=since)
    assert soql.select("Contact", ["COUNT()"], where=where) == (
        "SELECT COUNT() FROM Contact WHERE LastModifiedDate >= 2024-05-01T00:00:00Z AND Name LIKE 'a\\''"
    )


def test_select_refuses_unsafe_input() -> None:
    with pytest.raises(TypeError, match="never a plain string"):
        soql.select("Contact", ["Id"], where="Name = 'x'")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a Salesforce API name"):
        soql.select("Contact", ["Id FROM User --"])
    with pytest.raises(ValueError, match="not a Salesforce API name"):
        soql.select("Contact", ["Id"], where={"Name = 'a' OR Id": "x"})
    with pytest.raises(ValueError, match="ASC or DESC"):
        soql.select("Contact", ["Id"], order_by=[("Name", "; DROP")])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="positive integer"):
        soql.select("Contact", ["Id"], limit=0)
    with pytest.raises(ValueError, match="at least one field"):
        soql.select("Contact", [])
    with pytest.raises(ValueError, match="format specs"):
        soql.fragment("Name = {:literal}", "x")
    with pytest.raises(ValueError, match="conversions"):
        soql.fragment("Name = {!s}", "x")

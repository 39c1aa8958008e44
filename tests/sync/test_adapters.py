"""Built-in adapters, their args, and the adapter registry."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from crm_sync.sync.adapters import ADAPTERS, AdapterError, AdapterRegistry, is_blank
from crm_sync.sync.countries import COUNTRY_NAMES

ROOT = Path(__file__).resolve().parents[2]


def make(name: str, **args: Any) -> Callable[[Any], Any]:
    """Build a registered adapter the way a mapping file does: check args, then build."""
    definition = ADAPTERS.get(name)
    assert definition.arg_problems(args) == []
    return definition.build(args)


def refuses(name: str, value: Any, code: str, **args: Any) -> AdapterError:
    with pytest.raises(AdapterError) as info:
        make(name, **args)(value)
    assert info.value.code == code
    assert str(value) not in str(info.value), "adapter messages must not quote the value"
    return info.value


# -- is_blank ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, "", "   \t", float("nan"), Decimal("NaN"), pd.NaT, [], {}, ()])
def test_is_blank_true(value: Any) -> None:
    assert is_blank(value)


@pytest.mark.parametrize("value", [0, 0.0, False, "0", " x ", [None], date(2024, 1, 1)])
def test_is_blank_false(value: Any) -> None:
    assert not is_blank(value)


# -- text -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("strip", "  Ann \n", "Ann"),
        ("strip", 5, 5),
        ("lower", "ÀNN", "ànn"),
        ("upper", "ann", "ANN"),
        ("title", "ann o'neil-smith", "Ann O'Neil-Smith"),
        ("title", "ann's cafe", "Ann's Cafe"),
        ("title", None, None),
        ("none_if_blank", "  ", None),
        ("none_if_blank", float("nan"), None),
        ("none_if_blank", "x", "x"),
        ("none_if_blank", 0, 0),
        ("split_first", "  Ann Marie   Smith ", "Ann"),
        ("split_last", "  Ann Marie   Smith ", "Marie Smith"),
        ("split_last", "Cher", None),
        ("split_first", "", None),
        ("digits_only", "+1 (415) 555-0123", "14155550123"),
        ("digits_only", 27821234567.0, "27821234567"),
        ("digits_only", "n/a", None),
        ("email_normalise", "  Ann.Smith@Example.COM ", "ann.smith@example.com"),
        ("email_normalise", " ", None),
    ],
)
def test_text_adapters(name: str, value: Any, expected: Any) -> None:
    assert make(name)(value) == expected


def test_text_adapters_refuse_non_text_where_text_is_needed() -> None:
    for name in ("split_first", "split_last", "email_normalise", "iso_country_name"):
        refuses(name, 42, "INVALID_TYPE")


def test_truncate() -> None:
    cut = make("truncate", length=3)
    assert cut("Smithson") == "Smi"
    assert cut("Al") == "Al"
    assert cut(12345) == 12345
    assert cut(None) is None


@pytest.mark.parametrize("length", [0, -1, True, "3", 2.5])
def test_truncate_refuses_bad_length(length: Any) -> None:
    with pytest.raises(ValueError, match="length must be a positive integer"):
        ADAPTERS.get("truncate").build({"length": length})


# -- numbers and booleans ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("42", 42),
        (" -7 ", -7),
        ("3.0", 3),
        (3.0, 3),
        (Decimal("10"), 10),
        (True, 1),
        ("1e3", 1000),
        ("", None),
    ],
)
def test_to_int(value: Any, expected: Any) -> None:
    assert make("to_int")(value) == expected


@pytest.mark.parametrize("value", ["3.5", 2.25, "abc", "inf", float("inf")])
def test_to_int_refuses(value: Any) -> None:
    refuses("to_int", value, "INVALID_NUMBER")


def test_to_int_refuses_other_types() -> None:
    refuses("to_int", [1], "INVALID_TYPE")


@pytest.mark.parametrize(("value", "expected"), [("2.5", 2.5), (3, 3.0), (Decimal("0.1"), 0.1), (None, None)])
def test_to_float(value: Any, expected: Any) -> None:
    result = make("to_float")(value)
    assert result == expected
    assert result is None or isinstance(result, float)


@pytest.mark.parametrize("value", ["nan", "-Infinity", "1,5"])
def test_to_float_refuses(value: str) -> None:
    refuses("to_float", value, "INVALID_NUMBER")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", True),
        ("YES", True),
        (" y ", True),
        ("On", True),
        ("1", True),
        (1, True),
        (True, True),
        ("false", False),
        ("No", False),
        ("off", False),
        ("0", False),
        (0, False),
        (0.0, False),
        ("", None),
        (None, None),
    ],
)
def test_to_bool_and_not(value: Any, expected: bool | None) -> None:
    assert make("to_bool")(value) is expected
    assert make("not")(value) is (None if expected is None else not expected)


@pytest.mark.parametrize("value", ["maybe", 2, "truthy"])
def test_to_bool_refuses(value: Any) -> None:
    refuses("to_bool", value, "INVALID_BOOLEAN")
    refuses("not", value, "INVALID_BOOLEAN")


# -- dates ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (date(2024, 2, 29), "2024-02-29"),
        (datetime(2024, 2, 29, 23, 59, tzinfo=UTC), "2024-02-29"),
        (pd.Timestamp("2024-03-01 10:00"), "2024-03-01"),
        ("2024-03-01", "2024-03-01"),
        ("20240301", "2024-03-01"),
        ("2024-03-01T10:00:00Z", "2024-03-01"),
        (" 2024-03-01 10:00:00 ", "2024-03-01"),
        ("", None),
        (pd.NaT, None),
    ],
)
def test_iso_date(value: Any, expected: str | None) -> None:
    assert make("iso_date")(value) == expected


def test_iso_date_refuses() -> None:
    refuses("iso_date", "31/12/2024", "INVALID_DATE")
    refuses("iso_date", "2024-02-30", "INVALID_DATE")
    refuses("iso_date", 20240301, "INVALID_TYPE")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime(2024, 3, 1, 10, 5, 7, tzinfo=UTC), "2024-03-01T10:05:07+00:00"),
        (datetime(2024, 3, 1, 10, 5), "2024-03-01T10:05:00"),
        (date(2024, 3, 1), "2024-03-01T00:00:00"),
        ("2024-03-01T10:05:07Z", "2024-03-01T10:05:07+00:00"),
        ("2024-03-01", "2024-03-01T00:00:00"),
        (None, None),
    ],
)
def test_iso_datetime(value: Any, expected: str | None) -> None:
    assert make("iso_datetime")(value) == expected


def test_iso_datetime_refuses() -> None:
    refuses("iso_datetime", "yesterday", "INVALID_DATE")
    refuses("iso_datetime", 1700000000, "INVALID_TYPE")


@pytest.mark.parametrize(
    ("start", "day", "quarter", "year"),
    [
        (1, date(2024, 1, 1), 1, 2024),
        (1, date(2024, 3, 31), 1, 2024),
        (1, date(2024, 4, 1), 2, 2024),
        (1, date(2024, 12, 31), 4, 2024),
        (10, date(2023, 10, 1), 1, 2024),
        (10, date(2023, 12, 31), 1, 2024),
        (10, date(2024, 1, 1), 2, 2024),
        (10, date(2024, 9, 30), 4, 2024),
        (4, date(2024, 3, 31), 4, 2024),
        (4, date(2024, 4, 1), 1, 2025),
    ],
)
def test_fiscal_quarter_and_year(start: int, day: date, quarter: int, year: int) -> None:
    assert make("fiscal_quarter", fiscal_year_start_month=start)(day) == quarter
    assert make("fiscal_year", fiscal_year_start_month=start)(day) == year
    assert make("fiscal_quarter", fiscal_year_start_month=start)(day.isoformat()) == quarter


def test_fiscal_defaults_to_calendar_year() -> None:
    assert make("fiscal_quarter")("2024-08-15T12:00:00") == 3
    assert make("fiscal_year")(datetime(2024, 8, 15, tzinfo=UTC)) == 2024
    assert make("fiscal_year")(None) is None


@pytest.mark.parametrize("month", [0, 13, "1", True])
def test_fiscal_refuses_bad_start_month(month: Any) -> None:
    for name in ("fiscal_quarter", "fiscal_year"):
        with pytest.raises(ValueError, match="fiscal_year_start_month"):
            ADAPTERS.get(name).build({"fiscal_year_start_month": month})


# -- countries, phones, lookups, constants ---------------------------------------------------


def test_country_table_is_the_full_iso_list() -> None:
    assert len(COUNTRY_NAMES) == 249
    assert all(len(code) == 2 and code.isupper() for code in COUNTRY_NAMES)
    assert len(set(COUNTRY_NAMES.values())) == 249
    zone_tab = Path("/usr/share/zoneinfo/iso3166.tab")
    if zone_tab.exists():  # the tz database lists the same 249 assigned codes
        codes = {
            line.split("\t")[0] for line in zone_tab.read_text().splitlines() if not line.startswith("#")
        }
        assert codes == set(COUNTRY_NAMES)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("fr", "France"),
        (" GB ", "United Kingdom"),
        ("US", "United States"),
        ("ci", "Côte d'Ivoire"),
        ("KR", "Korea, Republic of"),
        ("Germany", "Germany"),
        ("", None),
    ],
)
def test_iso_country_name(value: str, expected: str | None) -> None:
    assert make("iso_country_name")(value) == expected


def test_iso_country_name_refuses_unassigned_codes() -> None:
    refuses("iso_country_name", "XX", "UNKNOWN_COUNTRY_CODE")


@pytest.mark.parametrize(
    ("value", "region", "expected"),
    [
        ("+1 415 555 0123", None, "+14155550123"),
        ("(415) 555-2671", "US", "+14155552671"),
        ("020 7946 0018", "gb", "+442079460018"),
        (27821234567, None, None),  # no '+': a bare number needs a region
        (27821234567.0, "ZA", "+27821234567"),
        ("  ", "US", None),
    ],
)
def test_e164_phone(value: Any, region: str | None, expected: str | None) -> None:
    phone = make("e164_phone", default_region=region)
    if expected is None and not is_blank(value):
        refuses("e164_phone", value, "INVALID_PHONE", default_region=region)
    else:
        assert phone(value) == expected


@pytest.mark.parametrize("value", ["12345", "call me maybe", "+44 20"])
def test_e164_phone_refuses_invalid_numbers(value: str) -> None:
    error = refuses("e164_phone", value, "INVALID_PHONE", default_region="US")
    assert "phone" in error.message


@pytest.mark.parametrize("region", ["XX", "United States", 1])
def test_e164_phone_refuses_unknown_region(region: Any) -> None:
    with pytest.raises((ValueError, TypeError), match="default_region"):
        ADAPTERS.get("e164_phone").build({"default_region": region})


def test_lookup_with_fallback() -> None:
    owner = make("lookup", values={"Ann Smith": 1, "Bob Jones": 2}, fallback=208823)
    assert owner("Ann Smith") == 1
    assert owner("Carol") == 208823
    assert owner(None) == 208823
    assert owner(["unhashable"]) == 208823


def test_lookup_without_fallback_rejects_a_miss() -> None:
    tier = make("lookup", values={"gold": "G", "silver": "S"})
    assert tier("gold") == "G"
    assert tier("") is None
    refuses("lookup", "bronze", "LOOKUP_MISS", values={"gold": "G"})


def test_lookup_null_fallback_is_a_fallback() -> None:
    assert make("lookup", values={"a": 1}, fallback=None)("b") is None


def test_lookup_ignore_case() -> None:
    tier = make("lookup", values={"Gold": "G"}, ignore_case=True)
    assert tier("GOLD") == "G"
    with pytest.raises(ValueError, match="differ only by case"):
        ADAPTERS.get("lookup").build({"values": {"Gold": 1, "gold": 2}, "ignore_case": True})


@pytest.mark.parametrize(
    "args", [{"values": {}}, {"values": ["a", "b"]}, {"values": {"a": 1}, "ignore_case": "yes"}]
)
def test_lookup_refuses_bad_args(args: dict[str, Any]) -> None:
    with pytest.raises(TypeError):
        ADAPTERS.get("lookup").build(args)


def test_constant() -> None:
    source = make("constant", value="Mobile Commons")
    assert source(None) == "Mobile Commons"
    assert source({"whole": "record"}) == "Mobile Commons"
    assert ADAPTERS.get("constant").applies_to == "any"


# -- args are checked against the factory signature -----------------------------------------


def test_arg_problems_name_unknown_and_missing_args() -> None:
    truncate = ADAPTERS.get("truncate")
    assert truncate.arg_problems({"lenght": 3}) == [
        ("lenght", "unknown arg 'lenght' for adapter 'truncate' (did you mean 'length'?)")
    ]
    assert truncate.arg_problems({}) == [(None, "adapter 'truncate' needs args: 'length'")]
    assert ADAPTERS.get("strip").arg_problems({"chars": " "}) == [(None, "adapter 'strip' takes no args")]
    assert ADAPTERS.get("fiscal_year").arg_problems({}) == []


# -- the registry -----------------------------------------------------------------------------

BUILT_INS = {
    "strip", "lower", "upper", "title", "none_if_blank", "to_int", "to_float", "to_bool", "not",
    "iso_date", "iso_datetime", "iso_country_name", "e164_phone", "lookup", "constant",
    "split_first", "split_last", "fiscal_quarter", "fiscal_year", "truncate", "digits_only",
    "email_normalise", "prefix", "domain", "table_lookup",
}  # fmt: skip


def test_every_built_in_is_registered_and_documented() -> None:
    assert set(ADAPTERS) >= BUILT_INS
    readme = (ROOT / "include" / "mappings" / "README.md").read_text(encoding="utf-8")
    undocumented = {name for name in BUILT_INS if f"`{name}`" not in readme}
    assert not undocumented


def test_register_a_value_adapter_and_a_transformer() -> None:
    registry = AdapterRegistry()

    @registry.register("shout")
    def shout(value: Any) -> Any:
        return f"{value}!"

    @registry.register("not_active", applies_to="record", reads=("active_flag",))
    def not_active(record: Any) -> Any:
        return not record.get("active_flag")

    assert list(registry) == ["not_active", "shout"]
    assert registry.get("shout").build({})("hi") == "hi!"
    assert registry.get("not_active").reads == ("active_flag",)
    assert registry.suggest("shot") == ["shout"]
    assert "shout" not in ADAPTERS, "a private registry must not leak into the default one"


def test_copy_is_independent() -> None:
    registry = ADAPTERS.copy()
    registry.register("only_here")(lambda value: value)
    assert "only_here" in registry
    assert "only_here" not in ADAPTERS
    assert len(registry) == len(ADAPTERS) + 1


def test_a_name_cannot_have_two_homes() -> None:
    registry = ADAPTERS.copy()

    def strip(value: Any) -> Any:
        return value

    with pytest.raises(ValueError, match=r"'strip' is already registered by crm_sync\.sync\.adapters\.strip"):
        registry.register("strip")(strip)


def test_registering_the_same_function_again_is_harmless() -> None:
    registry = ADAPTERS.copy()
    registry.register("strip")(ADAPTERS.get("strip").func)
    assert registry.get("strip").func is ADAPTERS.get("strip").func


@pytest.mark.parametrize(
    ("name", "kwargs", "func", "match"),
    [
        ("Bad-Name", {}, lambda v: v, "lower_snake_case"),
        ("rec", {"applies_to": "record"}, lambda r: r, "must declare the source fields"),
        ("val", {"reads": ("x",)}, lambda v: v, "only record adapters declare reads"),
        ("two", {}, lambda a, b: a, "exactly one argument"),
        ("fac", {"factory": True}, lambda a, /: a, "by keyword"),
    ],
)
def test_registration_refuses_mistakes(name: str, kwargs: dict[str, Any], func: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        AdapterRegistry().register(name, **kwargs)(func)


def test_nan_is_blank_for_every_none_safe_adapter() -> None:
    for name in (
        "iso_date",
        "to_int",
        "to_float",
        "to_bool",
        "digits_only",
        "split_first",
        "email_normalise",
    ):
        assert make(name)(math.nan) is None, name


# -- prefix, domain, table_lookup (two-way syncs: cross-ids, domains, run-time tables) --------


def test_prefix_builds_external_ids() -> None:
    deal_id = make("prefix", text="pd-deal-")
    assert deal_id(7) == "pd-deal-7"
    assert deal_id(7.0) == "pd-deal-7"
    assert deal_id(" 12 ") == "pd-deal-12"
    assert deal_id(None) is None
    assert deal_id("  ") is None
    assert ADAPTERS.get("prefix").arg_problems({}) != []
    with pytest.raises(TypeError):
        make("prefix", text="")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://www.Acme.com/about?x=1", "acme.com"),
        ("acme.co.uk", "acme.co.uk"),
        ("http://user@shop.acme.com:8080/", "shop.acme.com"),
        ("ann@Sales.Acme.com", "sales.acme.com"),
        (None, None),
        ("", None),
    ],
)
def test_domain_of_urls_and_emails(value: Any, expected: Any) -> None:
    assert make("domain")(value) == expected


def test_domain_refuses_what_is_no_address() -> None:
    refuses("domain", "not a domain", "INVALID_DOMAIN")
    refuses("domain", 42, "INVALID_TYPE")


def test_table_lookup_reads_the_run_time_table_with_fallback() -> None:
    from crm_sync.sync.adapters import lookup_tables

    owner = make("table_lookup", table="pipedrive_users", fallback=208823)
    strict = make("table_lookup", table="pipedrive_users")
    with lookup_tables(pipedrive_users={"Ann Smith": 1001}):
        assert owner("ann  SMITH") == 1001
        assert owner("Bob Stone") == 208823
        assert owner(None) == 208823
        assert strict(None) is None
        refuses("table_lookup", "Bob Stone", "LOOKUP_MISS", table="pipedrive_users")
        with lookup_tables(pipedrive_users={"Bob Stone": 7}):
            assert strict("Bob Stone") == 7
        assert owner("Bob Stone") == 208823


def test_table_lookup_without_its_table_is_a_configuration_error() -> None:
    from crm_sync.exceptions import ConfigurationError

    with pytest.raises(ConfigurationError, match="pipedrive_users"):
        make("table_lookup", table="pipedrive_users")("Ann Smith")

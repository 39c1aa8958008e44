"""The field-mapping DSL: loading, validation with file:line messages, applying, field diffs."""

from __future__ import annotations

import shutil
import textwrap
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_sync.exceptions import ConfigurationError, MappingError, RecordRejected
from crm_sync.sync.adapters import ADAPTERS, AdapterError, AdapterRegistry, is_blank
from crm_sync.sync.mapping import (
    FieldMapping,
    MappingFileError,
    changed_fields,
    load_mapping,
    load_mappings,
)

FIXTURES = Path(__file__).parent / "fixtures" / "mappings"


@pytest.fixture
def registry() -> AdapterRegistry:
    """The built-ins plus what an integration would register: a transformer and a strict adapter."""
    registry = ADAPTERS.copy()

    @registry.register("not_active", applies_to="record", reads=("active_flag",))
    def not_active(record: Any) -> Any:
        flag = record.get("active_flag")
        return None if flag is None else not flag

    @registry.register("deal_title", applies_to="record", reads=("title", "org.name"))
    def deal_title(record: Any) -> Any:
        return f"{record['title']} ({record['org']['name']})"

    @registry.register("explode")
    def explode(value: Any) -> Any:
        return int(value)  # ValueError quoting the value for non-numbers

    @registry.register("no_vowels")
    def no_vowels(value: Any) -> Any:
        if any(ch in "aeiou" for ch in str(value)):
            raise AdapterError("HAS_VOWELS", "vowels are not allowed")
        return value

    return registry


def write(tmp_path: Path, text: str, name: str = "m.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load_text(tmp_path: Path, text: str, registry: AdapterRegistry) -> FieldMapping:
    return load_mapping(write(tmp_path, text), registry=registry)


def one_field(tmp_path: Path, registry: AdapterRegistry, rule: str) -> FieldMapping:
    """A mapping with a single target field 'out' and the given rule body."""
    body = textwrap.indent(textwrap.dedent(rule).strip(), "    ")
    return load_text(tmp_path, f"mapping: t\nkey: id\nfields:\n  out:\n{body}\n", registry)


# -- the full example -------------------------------------------------------------------------


def test_person_to_lead_example(registry: AdapterRegistry) -> None:
    mapping = load_mapping(FIXTURES / "person_to_lead.yaml", registry=registry)
    assert mapping.name == "person_to_lead"
    assert (mapping.source, mapping.target, mapping.key) == ("pipedrive.person", "marketo.lead", "id")
    assert mapping.target_fields == (
        "firstName", "lastName", "name", "country", "owner_id", "toDelete", "email", "company", "phone",
    )  # fmt: skip
    assert mapping.no_clobber_fields == {"email"}
    assert mapping.required_fields == {"lastName"}
    assert mapping.source_fields == {
        "id", "first_name", "last_name", "inferred_country", "country", "owner_name", "active_flag",
        "email", "org_id", "phone",
    }  # fmt: skip
    person = {
        "id": 17,
        "first_name": "  ann ",
        "last_name": "Smith",
        "inferred_country": "",
        "country": "fr",
        "owner_name": "Ann Smith",
        "active_flag": False,
        "email": None,
        "org_id": {"name": "ACME", "value": 4},
        "phone": "(415) 555-2671",
    }
    assert mapping.apply(person) == {
        "firstName": "Ann",
        "lastName": "Smith",
        "name": "ann Smith",
        "country": "France",
        "owner_id": 1,
        "toDelete": True,
        "email": "unknown@unknown.com",
        "company": "ACME",
        "phone": "+14155552671",
    }


# -- modes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"a": "Ann", "b": "Smith"}, "Ann Smith"),
        ({"a": " Ann ", "b": None}, "Ann"),
        ({"a": "", "b": "Smith"}, "Smith"),
        ({"a": "  ", "b": None}, None),
        ({}, None),
        ({"a": 3, "b": "B"}, "3 B"),
    ],
)
def test_join(tmp_path: Path, registry: AdapterRegistry, record: dict[str, Any], expected: Any) -> None:
    mapping = one_field(tmp_path, registry, "fields: [a, b]\nmode: join")
    assert mapping.apply(record)["out"] == expected


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"a": "DE", "b": "FR"}, "DE"),
        ({"a": "", "b": "FR"}, "FR"),
        ({"a": None, "b": 0}, 0),
        ({"a": " ", "b": None}, None),
        ({}, None),
    ],
)
def test_choose(tmp_path: Path, registry: AdapterRegistry, record: dict[str, Any], expected: Any) -> None:
    mapping = one_field(tmp_path, registry, "fields: [a, b]\nmode: choose")
    assert mapping.apply(record)["out"] == expected


def test_single_field_passes_the_value_through(tmp_path: Path, registry: AdapterRegistry) -> None:
    mapping = one_field(tmp_path, registry, "fields: [a]")
    assert mapping.apply({"a": 12.5})["out"] == 12.5
    assert mapping.apply({"a": ""})["out"] == ""
    assert mapping.apply({})["out"] is None


def test_single_field_may_name_a_mode(tmp_path: Path, registry: AdapterRegistry) -> None:
    mapping = one_field(tmp_path, registry, "fields: [a]\nmode: join")
    assert mapping.apply({"a": " x "})["out"] == "x"
    assert mapping.apply({"a": " "})["out"] is None


def test_dotted_paths_read_nested_mappings(tmp_path: Path, registry: AdapterRegistry) -> None:
    mapping = one_field(tmp_path, registry, "fields: [org_id.name, org.deep.name]\nmode: choose")
    assert mapping.source_fields == {"org_id", "org", "id"}
    assert mapping.apply({"org_id": {"name": "ACME"}})["out"] == "ACME"
    assert mapping.apply({"org_id": None, "org": {"deep": {"name": "Deep"}}})["out"] == "Deep"
    assert mapping.apply({"org_id": 42, "org": {"deep": "flat"}})["out"] is None


# -- adapters in the pipeline -----------------------------------------------------------------


def test_pre_adapter_runs_on_each_value_before_combining(tmp_path: Path, registry: AdapterRegistry) -> None:
    mapping = one_field(
        tmp_path, registry, "fields: [inferred, country]\nmode: choose\npre_adapter: iso_country_name"
    )
    assert mapping.apply({"inferred": None, "country": "de"})["out"] == "Germany"
    assert mapping.apply({"inferred": "Italy", "country": "de"})["out"] == "Italy"


def test_adapter_lists_apply_in_order(tmp_path: Path, registry: AdapterRegistry) -> None:
    mapping = one_field(
        tmp_path,
        registry,
        """
        fields: [first, last]
        mode: join
        pre_adapter: [strip, lower]
        post_adapter:
          - title
          - {name: truncate, args: {length: 8}}
        """,
    )
    assert mapping.apply({"first": " ANN ", "last": "O'NEIL"})["out"] == "Ann O'Ne"


def test_post_adapter_order_matters(tmp_path: Path, registry: AdapterRegistry) -> None:
    first = one_field(
        tmp_path, registry, "fields: [a]\npost_adapter: [digits_only, {name: truncate, args: {length: 3}}]"
    )
    second = one_field(
        tmp_path, registry, "fields: [a]\npost_adapter: [{name: truncate, args: {length: 3}}, digits_only]"
    )
    assert first.apply({"a": "+1 (415) 555"})["out"] == "141"
    assert second.apply({"a": "+1 (415) 555"})["out"] == "1"


def test_transformer_receives_the_whole_record(tmp_path: Path, registry: AdapterRegistry) -> None:
    mapping = one_field(tmp_path, registry, "transformer: deal_title\npost_adapter: upper")
    assert mapping.source_fields == {"title", "org", "id"}
    assert mapping.apply({"title": "Renewal", "org": {"name": "Acme"}})["out"] == "RENEWAL (ACME)"


def test_constant_as_a_transformer(tmp_path: Path, registry: AdapterRegistry) -> None:
    mapping = one_field(tmp_path, registry, "transformer: {name: constant, args: {value: Mobile Commons}}")
    assert mapping.apply({})["out"] == "Mobile Commons"
    assert mapping.source_fields == {"id"}


def test_not_negates_an_active_flag(tmp_path: Path, registry: AdapterRegistry) -> None:
    mapping = one_field(tmp_path, registry, "fields: [active_flag]\npost_adapter: not")
    assert mapping.apply({"active_flag": True})["out"] is False
    assert mapping.apply({"active_flag": "false"})["out"] is True


def test_fiscal_fields_from_a_chosen_date(tmp_path: Path, registry: AdapterRegistry) -> None:
    mapping = load_text(
        tmp_path,
        """
        mapping: deal_to_opportunity
        fields:
          closeDate:
            fields: [close_time, expected_close_date]
            mode: choose
            post_adapter: iso_date
          fiscalQuarter:
            fields: [close_time, expected_close_date]
            mode: choose
            post_adapter: {name: fiscal_quarter, args: {fiscal_year_start_month: 7}}
          fiscalYear:
            fields: [close_time, expected_close_date]
            mode: choose
            post_adapter: {name: fiscal_year, args: {fiscal_year_start_month: 7}}
        """,
        registry,
    )
    deal = {"close_time": None, "expected_close_date": "2024-08-20 10:00:00"}
    assert mapping.apply(deal) == {"closeDate": "2024-08-20", "fiscalQuarter": 1, "fiscalYear": 2025}


# -- defaults, required, no_clobber -----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"), [(None, "n/a"), ("", "n/a"), ("  ", "n/a"), ("x", "x"), (0, 0)]
)
def test_default_replaces_blank_results(
    tmp_path: Path, registry: AdapterRegistry, value: Any, expected: Any
) -> None:
    mapping = one_field(tmp_path, registry, "fields: [a]\ndefault: n/a")
    assert mapping.apply({"a": value})["out"] == expected


def test_list_defaults_are_not_shared_between_payloads(tmp_path: Path, registry: AdapterRegistry) -> None:
    mapping = one_field(tmp_path, registry, "fields: [tags]\ndefault: [new]")
    first = mapping.apply({})
    first["out"].append("edited")
    assert mapping.apply({})["out"] == ["new"]


def test_default_applies_after_post_adapters(tmp_path: Path, registry: AdapterRegistry) -> None:
    mapping = one_field(tmp_path, registry, "fields: [a]\npost_adapter: digits_only\ndefault: '0'")
    assert mapping.apply({"a": "no digits"})["out"] == "0"


def test_required_rejects_an_empty_result(tmp_path: Path, registry: AdapterRegistry) -> None:
    mapping = one_field(tmp_path, registry, "fields: [email]\nrequired: true")
    assert mapping.apply({"id": 9, "email": "a@b.c"})["out"] == "a@b.c"
    with pytest.raises(RecordRejected) as info:
        mapping.apply({"id": 9, "email": "  "})
    assert (info.value.key, info.value.code, info.value.field) == ("9", "REQUIRED_FIELD_MISSING", "out")
    assert "'out'" in str(info.value)


def test_required_with_a_default_never_rejects(tmp_path: Path, registry: AdapterRegistry) -> None:
    mapping = one_field(tmp_path, registry, "fields: [email]\nrequired: true\ndefault: unknown@unknown.com")
    assert mapping.apply({})["out"] == "unknown@unknown.com"


def test_explicit_key_wins_over_the_key_field(tmp_path: Path, registry: AdapterRegistry) -> None:
    mapping = one_field(tmp_path, registry, "fields: [email]\nrequired: true")
    with pytest.raises(RecordRejected) as info:
        mapping.apply({"id": 9}, key="lead-77")
    assert info.value.key == "lead-77"
    with pytest.raises(RecordRejected) as info:
        mapping.apply({})
    assert info.value.key is None


def test_no_clobber_is_exposed_not_applied(tmp_path: Path, registry: AdapterRegistry) -> None:
    mapping = one_field(tmp_path, registry, "fields: [a]\nno_clobber: true")
    assert mapping.no_clobber_fields == {"out"}
    assert mapping.rule("out").no_clobber
    assert mapping.apply({"a": "v"}) == {"out": "v"}


# -- adapter failures become per-record rejections without the value ---------------------------


def test_adapter_error_keeps_its_own_code(tmp_path: Path, registry: AdapterRegistry) -> None:
    mapping = one_field(
        tmp_path, registry, "fields: [phone]\npost_adapter: {name: e164_phone, args: {default_region: US}}"
    )
    with pytest.raises(RecordRejected) as info:
        mapping.apply({"id": "p-1", "phone": "555-SECRET"})
    error = info.value
    assert (error.key, error.code, error.field) == ("p-1", "INVALID_PHONE", "out")
    assert "post_adapter 'e164_phone'" in str(error)
    assert "SECRET" not in str(error)
    assert error.__cause__ is None
    assert error.__context__ is None


def test_unexpected_adapter_failure_is_adapter_error_without_the_value(
    tmp_path: Path, registry: AdapterRegistry
) -> None:
    mapping = one_field(tmp_path, registry, "fields: [a, b]\nmode: join\npre_adapter: explode")
    with pytest.raises(RecordRejected) as info:
        mapping.apply({"id": 3, "a": "1", "b": "private-value"})
    error = info.value
    assert (error.key, error.code, error.field) == ("3", "ADAPTER_ERROR", "out")
    assert "pre_adapter 'explode' on source field 'b'" in str(error)
    assert "ValueError" in str(error)
    assert "private-value" not in str(error)
    assert error.__context__ is None, "the original exception quotes the value"


def test_custom_adapter_error_code(tmp_path: Path, registry: AdapterRegistry) -> None:
    mapping = one_field(tmp_path, registry, "fields: [a]\npost_adapter: no_vowels")
    assert mapping.apply({"a": "xyz"})["out"] == "xyz"
    with pytest.raises(RecordRejected) as info:
        mapping.apply({"id": 1, "a": "hello"})
    assert info.value.code == "HAS_VOWELS"
    assert "hello" not in str(info.value)


def test_transformer_failure_is_a_rejection(tmp_path: Path, registry: AdapterRegistry) -> None:
    mapping = one_field(tmp_path, registry, "transformer: deal_title")
    with pytest.raises(RecordRejected) as info:
        mapping.apply({"id": 5, "title": "x"})
    assert (info.value.code, info.value.field) == ("ADAPTER_ERROR", "out")
    assert "transformer 'deal_title'" in str(info.value)


# -- validation: one fixture per mistake, exact file and line ---------------------------------


@pytest.mark.parametrize(
    ("fixture", "line", "message"),
    [
        ("bad_unknown_adapter.yaml", 5, "unknown adapter 'strp' in post_adapter (did you mean 'strip'?)"),
        ("bad_unknown_adapter.yaml", 10, "unknown adapter 'totally_made_up'"),
        ("bad_adapter_args.yaml", 8, "unknown arg 'lenght' for adapter 'truncate' (did you mean 'length'?)"),
        ("bad_adapter_args.yaml", 11, "adapter 'lookup' needs args: 'values'"),
        ("bad_adapter_args.yaml", 14, "adapter 'strip' takes no args"),
        ("bad_adapter_args.yaml", 17, "fiscal_year_start_month must be between 1 and 12"),
        ("bad_duplicate_keys.yaml", 6, "duplicate key 'default' (first defined at line 5)"),
        ("bad_duplicate_keys.yaml", 9, "duplicate key 'phone' (first defined at line 7)"),
        ("bad_duplicate_keys.yaml", 13, "duplicate key 'Ann' (first defined at line 13)"),
        ("bad_duplicate_keys.yaml", 14, "duplicate key 'mapping' (first defined at line 1)"),
        ("bad_fields_and_transformer.yaml", 5, "'toDelete': give either 'fields' or 'transformer'"),
        ("bad_neither.yaml", 5, "target field 'email': needs 'fields'"),
        ("bad_empty_fields.yaml", 4, "target field 'email': 'fields' is empty"),
        ("bad_unknown_mode.yaml", 5, "unknown mode 'choice'; use join or choose (did you mean 'choose'?)"),
        (
            "bad_unknown_rule_key.yaml",
            5,
            "'post_adaptor' in target field 'firstName' (did you mean 'post_adapter'?)",
        ),
        ("bad_several_fields_no_mode.yaml", 6, "target field 'closeDate': 2 source fields but no 'mode'"),
        ("bad_missing_name.yaml", 2, "the mapping name is missing"),
        ("bad_invalid_yaml.yaml", 5, "invalid YAML: expected ',' or ']'"),
        ("bad_top_level_key.yaml", 3, "unknown key 'feilds' in the mapping file (did you mean 'fields'?)"),
    ],
)
def test_validation_names_file_and_line(
    registry: AdapterRegistry, fixture: str, line: int, message: str
) -> None:
    path = FIXTURES / fixture
    with pytest.raises(MappingFileError) as info:
        load_mapping(path, registry=registry)
    assert f"{path}:{line}: " in str(info.value)
    located = [p for p in info.value.problems if p.line == line and message in p.message]
    assert located, f"no problem at line {line} saying {message!r} in:\n{info.value}"
    assert all(p.path == str(path) for p in info.value.problems)


def test_one_problem_is_reported_as_file_line_message(registry: AdapterRegistry) -> None:
    path = FIXTURES / "bad_empty_fields.yaml"
    with pytest.raises(MappingError) as info:
        load_mapping(path, registry=registry)
    assert str(info.value) == f"{path}:4: target field 'email': 'fields' is empty"
    assert (info.value.path, info.value.line) == (str(path), 4)
    assert isinstance(info.value, ConfigurationError)


def test_three_mistakes_are_all_reported_with_their_lines(registry: AdapterRegistry) -> None:
    path = FIXTURES / "bad_three_mistakes.yaml"
    with pytest.raises(MappingFileError) as info:
        load_mapping(path, registry=registry)
    lines = str(info.value).splitlines()
    assert lines[0] == f"{path}: 3 problems:"
    assert lines[1:] == [
        f"{path}:6: target field 'firstName': unknown adapter 'titel' in post_adapter"
        " (did you mean 'title'?)",
        f"{path}:8: target field 'name': 2 source fields but no 'mode': say join or choose",
        f"{path}:12: duplicate key 'no_clobber' (first defined at line 11)",
    ]


def test_a_misspelt_required_key_is_one_mistake(registry: AdapterRegistry) -> None:
    with pytest.raises(MappingFileError) as info:
        load_mapping(FIXTURES / "bad_top_level_key.yaml", registry=registry)
    assert len(info.value.problems) == 1


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("", 1, "the file is empty"),
        ("- a\n- b\n", 1, "must be a YAML mapping"),
        ("mapping: 'has space'\nfields: {a: {fields: [a]}}\n", 1, "'mapping' must be a name"),
        ("mapping: m\nfields: []\n", 2, "'fields' must be a non-empty mapping"),
        ("mapping: m\nkey: 'a..b'\nfields: {a: {fields: [a]}}\n", 2, "'key' 'a..b' is not a field name"),
        ("mapping: m\nsource: 3\nfields: {a: {fields: [a]}}\n", 2, "'source' must be text"),
        ("mapping: m\nfields:\n  on:\n    fields: [a]\n", 3, "target field True must be text (quote it"),
        ("mapping: m\nfields:\n  a: b\n", 3, "target field 'a': expected a rule"),
        ("mapping: m\nfields:\n  a: {fields: [x]}\n---\nmapping: n\n", 4, "but found another document"),
    ],
)
def test_file_level_validation_errors(
    tmp_path: Path, registry: AdapterRegistry, text: str, line: int, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(MappingFileError) as info:
        load_mapping(path, registry=registry)
    assert any(p.line == line and message in p.message for p in info.value.problems), str(info.value)
    assert f"{path}:{line}: " in str(info.value)


@pytest.mark.parametrize(
    ("rule", "line", "message"),
    [
        (["fields: first_name"], 4, "'fields' must be a list"),
        (["fields: [x, x]", "mode: join"], 4, "source field 'x' is listed twice"),
        (["fields: ['x.']"], 4, "'x.' is not a source field name"),
        (["fields: [x]", "required: 'yes'"], 5, "'required' must be true or false"),
        (["transformer: not_active", "mode: join"], 5, "'mode' combines 'fields'"),
        (["transformer: not_active", "pre_adapter: strip"], 5, "'pre_adapter' applies to 'fields'"),
        (["transformer: [not_active, strip]"], 4, "'transformer' takes one adapter"),
        (["transformer: strip"], 4, "adapter 'strip' takes one value, not a record"),
        (["fields: [x]", "post_adapter: not_active"], 5, "takes the whole record"),
        (["fields: [x]", "post_adapter: []"], 5, "'post_adapter' is an empty list"),
        (["fields: [x]", "post_adapter: 7"], 5, "must be an adapter name"),
        (["fields: [x]", "post_adapter: {args: {}}"], 5, "post_adapter needs a 'name'"),
        (["fields: [x]", "post_adapter: {name: truncate, args: 3}"], 5, "'args' must be a mapping"),
        (
            ["fields: [x]", "post_adapter: {name: strip, arg: {}}"],
            5,
            "'arg' in target field 'a' post_adapter",
        ),
        (["fields: [x]", "post_adapter:", "  - strip", "  - stirp"], 7, "unknown adapter 'stirp'"),
        (["fields: [x]", "post_adapter: {name: e164_phone, args: {default_region: XX}}"], 5, "not a region"),
    ],
)
def test_rule_validation_errors(
    tmp_path: Path, registry: AdapterRegistry, rule: list[str], line: int, message: str
) -> None:
    path = write(tmp_path, "mapping: m\nfields:\n  a:\n" + "".join(f"    {row}\n" for row in rule))
    with pytest.raises(MappingFileError) as info:
        load_mapping(path, registry=registry)
    assert any(p.line == line and message in p.message for p in info.value.problems), str(info.value)
    assert f"{path}:{line}: " in str(info.value)


def test_merge_keys_may_override_without_being_duplicates(tmp_path: Path, registry: AdapterRegistry) -> None:
    mapping = load_text(
        tmp_path,
        """
        mapping: m
        fields:
          a: &base
            fields: [x]
            default: base
          b:
            <<: *base
            default: own
        """,
        registry,
    )
    assert mapping.apply({}) == {"a": "base", "b": "own"}


def test_invalid_yaml_message_does_not_quote_the_file(tmp_path: Path, registry: AdapterRegistry) -> None:
    path = write(tmp_path, "mapping: m\nfields:\n  a: {fields: [secret-name\n")
    with pytest.raises(MappingFileError) as info:
        load_mapping(path, registry=registry)
    assert "secret-name" not in str(info.value)


# -- adapters are resolved at load time --------------------------------------------------------


def test_an_integration_registers_its_adapters_before_loading(tmp_path: Path) -> None:
    registry = ADAPTERS.copy()
    path = write(tmp_path, "mapping: m\nfields:\n  score:\n    fields: [x]\n    post_adapter: double\n")
    with pytest.raises(MappingFileError, match=r"unknown adapter 'double'.*imported before loading"):
        load_mapping(path, registry=registry)

    @registry.register("double")
    def double(value: Any) -> Any:
        return value * 2

    assert load_mapping(path, registry=registry).apply({"x": 4}) == {"score": 8}


def test_default_registry_is_used_without_one(tmp_path: Path) -> None:
    path = write(tmp_path, "mapping: m\nfields:\n  a:\n    fields: [x]\n    post_adapter: upper\n")
    assert load_mapping(path).apply({"x": "a"}) == {"a": "A"}


# -- a directory of mappings ------------------------------------------------------------------


def test_load_mappings_keys_by_name(tmp_path: Path, registry: AdapterRegistry) -> None:
    for name in ("person_to_lead.yaml", "organization_to_company.yaml"):
        shutil.copy(FIXTURES / name, tmp_path / name)
    shutil.copy(FIXTURES / "dup_name_a.yaml", tmp_path / "lead_to_person.yml")
    (tmp_path / "README.md").write_text("not a mapping")
    mappings = load_mappings(tmp_path, registry=registry)
    assert sorted(mappings) == ["lead_to_person", "organization_to_company", "person_to_lead"]
    assert mappings["organization_to_company"].apply({"id": 12, "name": None}) == {
        "company": "Default organization name",
        "externalCompanyId": 12,
    }


def test_duplicate_mapping_names_name_both_files(tmp_path: Path, registry: AdapterRegistry) -> None:
    for name in ("dup_name_a.yaml", "dup_name_b.yaml"):
        shutil.copy(FIXTURES / name, tmp_path / name)
    with pytest.raises(MappingFileError) as info:
        load_mappings(tmp_path, registry=registry)
    assert str(info.value) == (
        f"{tmp_path / 'dup_name_b.yaml'}:2: mapping name 'lead_to_person' is already used by "
        f"{tmp_path / 'dup_name_a.yaml'}:1"
    )


def test_load_mappings_reports_every_file(tmp_path: Path, registry: AdapterRegistry) -> None:
    for name in ("person_to_lead.yaml", "bad_empty_fields.yaml", "bad_three_mistakes.yaml"):
        shutil.copy(FIXTURES / name, tmp_path / name)
    with pytest.raises(MappingFileError) as info:
        load_mappings(tmp_path, registry=registry)
    assert {(Path(p.path).name, p.line) for p in info.value.problems} == {
        ("bad_empty_fields.yaml", 4),
        ("bad_three_mistakes.yaml", 6),
        ("bad_three_mistakes.yaml", 8),
        ("bad_three_mistakes.yaml", 12),
    }
    assert str(info.value).startswith(f"{tmp_path}: 4 problems:")


def test_load_mappings_needs_a_directory(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match="not a directory"):
        load_mappings(tmp_path / "missing")
    assert load_mappings(tmp_path) == {}


# -- changed_fields ---------------------------------------------------------------------------


def test_changed_fields_sends_only_real_changes() -> None:
    mapped = {"a": "new", "b": "same", "c": None, "d": "", "e": "x", "f": 5, "g": True, "h": "007"}
    current = {"a": "old", "b": "same", "c": "keep", "d": "keep", "f": "5", "g": "true", "h": "7"}
    assert changed_fields(mapped, current) == {"a": "new", "e": "x", "h": "007"}


def test_changed_fields_respects_no_clobber() -> None:
    mapped = {"email": "new@x.org", "phone": "+1", "name": "Ann"}
    current = {"email": "old@x.org", "phone": "  ", "name": "Bob"}
    assert changed_fields(mapped, current, no_clobber={"email", "phone"}) == {"phone": "+1", "name": "Ann"}


def test_changed_fields_compares_numbers_and_dates_by_value() -> None:
    mapped = {"amount": 10.0, "close": date(2024, 1, 2), "n": 3, "flag": False}
    current = {"amount": "10", "close": "2024-01-02", "n": 4, "flag": "false"}
    assert changed_fields(mapped, current) == {"n": 3}


def test_changed_fields_compares_instants_whatever_their_notation() -> None:
    # Marketo answers "...Z" for what was sent as "+00:00": the same instant is no change.
    mapped = {
        "created": "2026-11-25T15:52:05+00:00",
        "moved": "2026-11-25T17:52:05+02:00",
        "seen": datetime(2026, 11, 25, 15, 52, 5, tzinfo=UTC),
        "later": "2026-11-25T15:52:06+00:00",
    }
    current = {
        "created": "2026-11-25T15:52:05Z",
        "moved": "2026-11-25T15:52:05Z",
        "seen": "2026-11-25T15:52:05.000Z",
        "later": "2026-11-25T15:52:05Z",
    }
    assert changed_fields(mapped, current) == {"later": "2026-11-25T15:52:06+00:00"}


scalars = st.one_of(st.none(), st.text(max_size=4), st.integers(-3, 3), st.booleans())


@settings(database=None, deadline=None, max_examples=200)
@given(
    mapped=st.dictionaries(st.sampled_from("abcdef"), scalars),
    current=st.dictionaries(st.sampled_from("abcdef"), scalars),
    no_clobber=st.sets(st.sampled_from("abcdef")),
)
def test_changed_fields_never_blanks_and_never_clobbers(
    mapped: dict[str, Any], current: dict[str, Any], no_clobber: set[str]
) -> None:
    changes = changed_fields(mapped, current, no_clobber=no_clobber)
    assert set(changes) <= set(mapped)
    for name, value in changes.items():
        assert value == mapped[name]
        assert not is_blank(value)
        assert value != current.get(name)
        assert name not in no_clobber or is_blank(current.get(name))

"""Row-vs-contact comparison, phone and date rules, and the configuration layers."""

from __future__ import annotations

from pathlib import Path

import pytest

from crm_sync.exceptions import ConfigurationError, RecordRejected
from crm_sync.integrations.gpconnect.config import GpConnectConfig, config_file, load_config
from crm_sync.integrations.gpconnect.files import S3File, row_key, select_files
from crm_sync.integrations.gpconnect.transforms import differs, is_positive, to_date, to_e164

TYPES = {"age": "number", "date_of_test": "datetime", "facility": "text", "has_whatsapp": "text"}


def test_a_row_equal_to_the_stored_fields_does_not_differ():
    stored = {
        "age": "40",
        "date_of_test": "2026-11-03T00:00:00.000000+02:00",
        "facility": "Soweto Clinic",
        "has_whatsapp": "true",
        "surname": None,
    }
    row = {
        "age": 40.0,
        "date_of_test": "2026-11-03",
        "facility": "Soweto Clinic",
        "has_whatsapp": True,
        "surname": None,
    }
    assert differs(row, stored, TYPES) == []


def test_changed_values_are_named():
    stored = {
        "age": "40",
        "date_of_test": "2026-11-03T00:00:00.000000+02:00",
        "facility": "A",
        "has_whatsapp": None,
    }
    row = {"age": 41, "date_of_test": "2026-11-04", "facility": "A", "has_whatsapp": False}
    assert differs(row, stored, TYPES) == ["age", "date_of_test", "has_whatsapp"]


def test_timestamps_compare_by_instant():
    stored = {"date_of_test": "2019-09-10T14:30:00.000000+02:00"}
    assert differs({"date_of_test": "2019-09-10T12:30:00+00:00"}, stored, TYPES) == []
    assert differs({"date_of_test": "2019-09-10T14:31:00+02:00"}, stored, TYPES) == ["date_of_test"]


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        (1, True),
        (1.0, True),
        ("1", True),
        (" 1 ", True),
        (True, True),
        (0, False),
        ("", False),
        (None, False),
        ("x", False),
        (2, False),
    ],
)
def test_positive_flag(value, kept):
    assert is_positive(value) is kept


def test_phone_rules():
    assert to_e164("082 123 4567", "ZA", key="k", row=2) == "+27821234567"
    assert to_e164(27821234567, "ZA", key="k", row=2) == "+27821234567"
    assert to_e164("+44 20 7946 0958", "ZA", key="k", row=2) == "+442079460958"
    with pytest.raises(RecordRejected) as caught:
        to_e164("555", "ZA", key="k", row=7)
    assert (caught.value.code, caught.value.field) == ("INVALID_PHONE", "telephone_no")
    assert "row 7" in caught.value.reason


def test_date_rules():
    assert to_date(43718) == "2019-09-10"
    assert to_date("2019-09-10T08:00:00Z") == "2019-09-10T08:00:00+00:00"
    with pytest.raises(ValueError, match="outside"):
        to_date(-5)


def test_config_layers_merge_per_org_and_flow(tmp_path: Path):
    path = tmp_path / "gp.yaml"
    path.write_text(
        "bucket: b\norgs:\n  GP Connect:\n    flows:\n"
        "      new_contact: 6b0c8f0e-5b1a-4c1e-9a0d-000000000001\n"
        "      contact_update: 6b0c8f0e-5b1a-4c1e-9a0d-000000000002\n"
    )
    config = load_config(
        {
            "prefix": "in/",
            "orgs": {"GP Connect": {"flows": {"contact_update": "6b0c8f0e-5b1a-4c1e-9a0d-0000000000aa"}}},
        },
        {"files_per_run": 3},
        path=path,
    )
    org = config.org(None)
    assert (config.bucket, config.prefix, config.files_per_run) == ("b", "in/", 3)
    assert org.flow("new_contact").endswith("0001")
    assert org.flow("contact_update").endswith("00aa")
    assert config.org("gp connect") is org


def test_config_errors_are_specific(tmp_path: Path):
    with pytest.raises(ConfigurationError, match="unknown GP Connect setting"):
        GpConnectConfig.from_mapping({"bukket": "x"})
    with pytest.raises(ConfigurationError, match="not configured"):
        GpConnectConfig().org("Elsewhere")
    config = GpConnectConfig.from_mapping({"orgs": {"GP Connect": {"flows": {"new_contact": "not-a-uuid"}}}})
    with pytest.raises(ConfigurationError, match="must be a UUID"):
        config.org(None).flow("new_contact")
    with pytest.raises(ConfigurationError, match="no 'contact_update' flow"):
        config.org(None).flow("contact_update")


def test_the_shipped_config_file_loads():
    path = config_file()
    assert path is not None
    config = load_config(path=path)
    assert config.prefix == "uploads/"
    assert config.default_org == "GP Connect"
    assert config.wants("uploads/a.XLSX")
    assert config.wants("uploads/x/b.csv")
    for key in ("uploads/", "uploads/notes.txt", "other/a.xlsx"):
        assert not config.wants(key)


def test_file_selection_resumes_first_then_oldest_new(sqlite_url: str):
    from datetime import UTC, datetime

    from crm_sync.integrations.gpconnect.files import start_import
    from crm_sync.sync.staging import make_engine

    engine = make_engine(sqlite_url)
    day = datetime(2026, 11, 1, tzinfo=UTC)
    listed = [S3File("uploads/c.xlsx", "e3", 1, day.replace(day=3)), S3File("uploads/a.xlsx", "e1", 1, day)]
    listed.sort(key=lambda f: f.last_modified)
    chosen, _ = select_files(engine, integration="i", listed=listed, limit=1, run_id="r1")
    assert [s.file_key for _, s in chosen] == ["uploads/a.xlsx"]
    item, selected = chosen[0]
    start_import(
        engine, integration="i", item=item, selected=selected, org="GP Connect", requested_by="x", run_id="r1"
    )
    newer = sorted(
        [*listed, S3File("uploads/b.xlsx", "e2", 1, day.replace(day=2))], key=lambda f: f.last_modified
    )
    chosen, _ = select_files(engine, integration="i", listed=newer, limit=2, run_id="r2")
    assert [(s.file_key, s.resumed) for _, s in chosen] == [
        ("uploads/a.xlsx", True),
        ("uploads/b.xlsx", False),
    ]
    assert chosen[0][1].import_id == selected.import_id
    assert row_key(selected.import_id, 12) == f"{selected.import_id}:0000012"
    # A new version of the same key is a new import; a reprocess gets a new id.
    replaced = [S3File("uploads/a.xlsx", "e9", 1, day.replace(day=4))]
    chosen, _ = select_files(engine, integration="i", listed=replaced, limit=1, run_id="r3")
    assert chosen[0][1].etag == "e9"
    again, _ = select_files(
        engine,
        integration="i",
        listed=listed,
        limit=1,
        file_key="uploads/a.xlsx",
        reprocess=True,
        run_id="r4",
    )
    assert again[0][1].import_id != selected.import_id
    with pytest.raises(ConfigurationError, match="not a report"):
        select_files(
            engine, integration="i", listed=listed, limit=1, file_key="uploads/zzz.xlsx", run_id="r5"
        )

"""The source schema, views and extracts on real SQLite and PostgreSQL databases."""

from __future__ import annotations

from datetime import date, datetime

import pytest
import sqlalchemy as sa

from crm_sync.exceptions import ConfigurationError
from crm_sync.integrations.aou.config import AouConfig
from crm_sync.integrations.aou.generator import generate_source
from crm_sync.integrations.aou.source import (
    CONTACT_SOURCE_COLUMNS,
    JOURNEY_SOURCE_COLUMNS,
    VIEWS,
    create_source_schema,
    extract_contacts,
    extract_journeys,
    load_sql,
    readiness_count,
    split_statements,
    sql_dialect,
)
from crm_sync.integrations.aou.transforms import (
    CONTACT_FIELDS,
    JOURNEY_FIELDS,
    contact_from_base,
    journey_from_base,
)

DAY = date(2024, 5, 1)
LOADED = datetime(2024, 5, 1, 3, 0)
ORG = "COLUMBIA_COLUMBIA"


@pytest.fixture
def engine(staging_url):
    engine = sa.create_engine(staging_url)
    yield engine
    engine.dispose()


def _insert(engine, table, rows):
    reflected = sa.Table(table, sa.MetaData(), autoload_with=engine)
    keys = {key for row in rows for key in row}
    with engine.begin() as conn:
        conn.execute(reflected.insert(), [{key: row.get(key) for key in keys} for row in rows])


def _healthpro(row_id, pmi, **values):
    row = {
        "etl_row_id": row_id,
        "PMI ID": pmi,
        "Last Name": "Doe",
        "First Name": "Jane",
        "Date of Birth": date(1980, 2, 29),
        "Paired Organization": ORG,
        "State": "NY",
        "Email": "jane@example.com",
        "Phone": "2125550100",
        "Withdrawal Status": 0,
        "General Consent Status": 1,
        "General Consent Date": date(2019, 1, 2),
        "etl_loaded_at": LOADED,
    }
    row.update(values)
    return row


def _redcap(record_id, pmi, **values):
    return {"record_id": record_id, "pmi_id": pmi, "etl_loaded_at": LOADED, **values}


@pytest.fixture
def crafted(engine):
    """Hand-made rows, one per rule."""
    create_source_schema(engine)
    _insert(
        engine,
        "healthpro",
        [
            _healthpro(
                1,
                "P000000001",
                **{
                    "State": " ny ",
                    "Email": "  Jane.DOE@Example.COM ",
                    "Phone": "+1 (212) 555-0100",
                    "Date of Birth": date(1900, 1, 1),
                    "Last Name": " Doe ",
                },
            ),
            _healthpro(
                2,
                "P000000002",
                **{
                    "State": "XX",
                    "Phone": "555-0100",
                    "Email": None,
                    "Samples for DNA Received": 1,
                    "General Consent Status": None,
                },
            ),
            _healthpro(3, "P000000003", **{"Paired Organization": "WEILL_CORNELL"}),
            _healthpro(4, "P000000004", **{"Withdrawal Status": 1, "Withdrawal Date": date(2023, 7, 4)}),
            # P5 loaded twice: the older row (lower load time, higher row id) must lose.
            _healthpro(5, "P000000005", **{"Email": "new@example.com", "Withdrawal Date": date(1900, 1, 1)}),
            _healthpro(
                9, "P000000005", **{"Email": "old@example.com", "etl_loaded_at": datetime(2024, 4, 30, 3, 0)}
            ),
            _healthpro(
                6, "P000000006", **{"State": None, "Phone": None, "Date of Birth": None, "DV Enrollment": 1}
            ),
            _healthpro(7, "P000000007", **{"Phone": "212-555-0100 x12", "State": "pr"}),
        ],
    )
    _insert(
        engine,
        "redcap",
        [
            _redcap(7, " p000000002 ", tech_asst=1, aou_enroller="ab1234", learn_aou=None),
            _redcap(8, "P000000005", aou_enroller="old1111"),
            _redcap(
                9,
                "P000000005",
                aou_enroller="cd5678",
                tech_asst=0,
                other_details="  Evenings ",
                learn_aou="Flyer",
                spec_provider=None,
            ),
            _redcap(10, None, aou_enroller="zz0000"),
        ],
    )
    return engine


def _by_pmi(rows):
    return {row["HP_PMI_ID__c"]: row for row in rows}


def test_schema_and_views_are_created_idempotently(engine):
    create_source_schema(engine)
    create_source_schema(engine)
    inspector = sa.inspect(engine)
    assert {"healthpro", "redcap"} <= set(inspector.get_table_names())
    assert set(VIEWS) <= set(inspector.get_view_names())
    with engine.connect() as conn:
        contact_keys = list(conn.execute(sa.text("SELECT * FROM aou_contact_source")).keys())
        journey_keys = list(conn.execute(sa.text("SELECT * FROM aou_journey_source")).keys())
    assert contact_keys == [f for f in CONTACT_FIELDS if f != "AccountId"] + [
        "withdrawn",
        "paired_organization",
    ]
    assert journey_keys == [*JOURNEY_FIELDS, "paired_organization"]


def test_create_source_schema_keeps_existing_rows(crafted):
    create_source_schema(crafted)
    assert len(list(extract_contacts(crafted))) == 6


def test_contact_rules_in_sql(crafted):
    contacts = _by_pmi(extract_contacts(crafted))
    assert list(contacts) == sorted(contacts)
    assert set(contacts) == {f"P00000000{n}" for n in (1, 2, 4, 5, 6, 7)}  # P3 is another organisation's
    first = contacts["P000000001"]
    assert list(first) == list(CONTACT_SOURCE_COLUMNS)
    assert first["MailingState"] == "NEW YORK"
    assert first["Email"] == "jane.doe@example.com"
    assert first["Phone"] == "(212) 555-0100"
    assert first["Birthdate"] == ""
    assert first["LastName"] == "Doe"
    assert first["AccountId"] == AouConfig().account_id
    assert first["CH_REDCap_Record_ID__c"] == ""  # no REDCap record: every REDCap field is ''
    assert first["CH_Technical_Assistance_Required__c"] == ""
    assert first["CH_All_of_Us_Enroller_UNI__c"] == ""
    second = contacts["P000000002"]
    assert (second["MailingState"], second["Phone"], second["Email"]) == ("", "", "")
    assert second["Birthdate"] == "1980-02-29"
    assert second["CH_REDCap_Record_ID__c"] == "7"  # joined although typed ' p000000002 '
    assert second["CH_Technical_Assistance_Required__c"] == "1"
    assert second["CH_All_of_Us_Enroller_UNI__c"] == "ab1234"
    assert second["CH_How_did_contact_learn_about_AoU__c"] == ""
    assert contacts["P000000004"]["withdrawn"] == 1
    assert first["withdrawn"] == 0
    fifth = contacts["P000000005"]
    assert fifth["Email"] == "new@example.com"  # the latest load wins
    assert fifth["CH_REDCap_Record_ID__c"] == "9"  # the highest REDCap record wins
    assert fifth["CH_All_of_Us_Enroller_UNI__c"] == "cd5678"
    assert fifth["CH_Other_details__c"] == "Evenings"
    assert fifth["CH_Technical_Assistance_Required__c"] == "0"
    sixth = contacts["P000000006"]
    assert (sixth["MailingState"], sixth["Phone"], sixth["Birthdate"]) == ("", "", "")
    assert sixth["DV_Enrollment__c"] == 1
    assert first["DV_Enrollment__c"] == 0
    seventh = contacts["P000000007"]
    assert (seventh["Phone"], seventh["MailingState"]) == ("", "PUERTO RICO")


def test_journey_rules_in_sql(crafted):
    journeys = _by_pmi(extract_journeys(crafted))
    assert set(journeys) == {f"P00000000{n}" for n in (1, 2, 4, 5, 6, 7)}
    assert list(journeys["P000000001"]) == list(JOURNEY_SOURCE_COLUMNS)
    withdrawn = journeys["P000000004"]
    assert (withdrawn["HP_Withdrawal_Status__c"], withdrawn["HP_Withdrawal_Date__c"]) == (1, "2023-07-04")
    fifth = journeys["P000000005"]
    assert (fifth["HP_Withdrawal_Status__c"], fifth["HP_Withdrawal_Date__c"]) == (0, "")  # 1900-01-01
    assert journeys["P000000001"]["HP_General_Consent_Status__c"] == 1
    assert journeys["P000000001"]["HP_General_Consent_Date__c"] == "2019-01-02"
    assert journeys["P000000002"]["HP_General_Consent_Status__c"] == 0  # NULL flag
    assert journeys["P000000002"]["HP_Samples_for_DNA_Received__c"] == 1
    assert journeys["P000000002"]["HP_PPI_Basics_Date__c"] == ""  # NULL date
    assert journeys["P000000002"]["HP_Participant_Status__c"] == ""  # NULL text


def test_paired_organisation_and_account_come_from_the_config(crafted):
    config = AouConfig(paired_organization="WEILL_CORNELL", account_id="001000000000042AAA")
    contacts = list(extract_contacts(crafted, config=config))
    assert [row["HP_PMI_ID__c"] for row in contacts] == ["P000000003"]
    assert contacts[0]["AccountId"] == "001000000000042AAA"
    assert [row["HP_PMI_ID__c"] for row in extract_journeys(crafted, config=config)] == ["P000000003"]
    nobody = AouConfig(paired_organization="NO_SUCH_ORG")
    assert list(extract_contacts(crafted, config=nobody)) == []


def test_extract_with_pmi_ids_and_limit(crafted):
    wanted = ["P000000006", "P000000001", "P000000003", "P999999999", "P000000006"]
    assert [r["HP_PMI_ID__c"] for r in extract_contacts(crafted, pmi_ids=wanted)] == [
        "P000000001",
        "P000000006",
    ]
    assert [r["HP_PMI_ID__c"] for r in extract_journeys(crafted, pmi_ids=wanted, limit=1)] == ["P000000001"]
    assert [r["HP_PMI_ID__c"] for r in extract_contacts(crafted, limit=2, chunk_size=1)] == [
        "P000000001",
        "P000000002",
    ]
    assert list(extract_contacts(crafted, pmi_ids=[])) == []
    assert list(extract_contacts(crafted, limit=0)) == []
    with pytest.raises(ValueError, match="limit"):
        list(extract_contacts(crafted, limit=-1))


def test_extract_binds_a_long_pmi_id_list_in_chunks(engine):
    generate_source(engine, participants=1200, seed=3, day=DAY)
    every = [row["HP_PMI_ID__c"] for row in extract_contacts(engine)]
    wanted = every[::2] + [f"P9{n:08d}" for n in range(1500)]  # > 2100 values: several IN lists
    got = [row["HP_PMI_ID__c"] for row in extract_contacts(engine, pmi_ids=wanted, chunk_size=100)]
    assert got == every[::2]
    limited = [row["HP_PMI_ID__c"] for row in extract_contacts(engine, pmi_ids=wanted, limit=len(got) - 3)]
    assert limited == got[:-3]


def test_readiness_counts_loads_on_or_after_the_day(crafted):
    assert readiness_count(crafted, day=DAY) == 7  # P5's older row belongs to the day before
    # A backfill of an earlier day is ready once a later load is there (the source keeps
    # only its latest load); a day after the last load is not.
    assert readiness_count(crafted, day=date(2024, 4, 30)) == 7
    assert readiness_count(crafted, day=date(2024, 5, 2)) == 0


def test_views_agree_with_the_python_rules(engine):
    generate_source(engine, participants=800, seed=5, day=DAY)
    account = AouConfig().account_id
    with engine.connect() as conn:
        base = [dict(row) for row in conn.execute(sa.text("SELECT * FROM vw_reporting_base")).mappings()]
        contacts = _by_pmi(
            dict(r) for r in conn.execute(sa.text("SELECT * FROM aou_contact_source")).mappings()
        )
        journeys = _by_pmi(
            dict(r) for r in conn.execute(sa.text("SELECT * FROM aou_journey_source")).mappings()
        )
    assert len(base) == len(contacts) == len(journeys) == 800
    for row in base:
        pmi = row["PMI ID_HP"]
        expected = contact_from_base(row, account_id=account)
        del expected["AccountId"]
        actual = contacts[pmi]
        assert actual.pop("paired_organization") == (row["Paired Organization_HP"] or "").strip()
        assert actual == expected, pmi
        journey = journeys[pmi]
        journey.pop("paired_organization")
        assert journey == journey_from_base(row), pmi


def test_views_give_identical_rows_on_sqlite_and_postgres(sqlite_url, pg_url):
    results = []
    for url in (sqlite_url, pg_url):
        engine = sa.create_engine(url)
        generate_source(engine, participants=700, seed=9, day=DAY)
        results.append(
            (list(extract_contacts(engine)), list(extract_journeys(engine)), readiness_count(engine, day=DAY))
        )
        engine.dispose()
    sqlite_result, pg_result = results
    assert len(sqlite_result[0]) > 500
    assert sqlite_result == pg_result
    for contact in sqlite_result[0]:
        assert all(type(value) in (str, int) for value in contact.values())


def test_sql_dialect_and_file_loading(engine):
    assert sql_dialect(engine) == "portable"
    assert "CREATE OR ALTER VIEW dbo.aou_contact_source" in load_sql("mssql", "aou_contact_source")
    with pytest.raises(ConfigurationError, match="unknown AOU SQL dialect"):
        load_sql("oracle", "schema")
    with pytest.raises(ConfigurationError, match="malformed"):
        load_sql("portable", "../schema")
    with pytest.raises(ConfigurationError, match="not found"):
        load_sql("portable", "no_such_file")


def test_split_statements():
    portable = "-- a comment only\nCREATE TABLE a (x INTEGER);\nCREATE INDEX i ON a (x);\n-- trailing\n"
    assert split_statements(portable, "portable") == [
        "-- a comment only\nCREATE TABLE a (x INTEGER)",
        "CREATE INDEX i ON a (x)",
    ]
    tsql = "IF 1 = 1\nSELECT 1;\nGO\n  go  \nSELECT 2\nGO\n"
    assert split_statements(tsql, "mssql") == ["IF 1 = 1\nSELECT 1;", "SELECT 2"]


def test_unsupported_database_is_a_configuration_error():
    engine = sa.create_mock_engine("mysql://", executor=lambda *args, **kwargs: None)
    with pytest.raises(ConfigurationError, match="not mysql"):
        sql_dialect(engine)

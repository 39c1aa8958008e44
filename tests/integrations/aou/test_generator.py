"""The synthetic AOU source: deterministic, and the documented mix."""

from __future__ import annotations

from collections import Counter
from datetime import date

import pytest
import sqlalchemy as sa

from crm_sync.integrations.aou.config import AouConfig
from crm_sync.integrations.aou.generator import (
    PardotMix,
    generate_pardot_contacts,
    generate_source,
    mutate_source,
)
from crm_sync.integrations.aou.pardot import match_pardot
from crm_sync.integrations.aou.source import extract_contacts, extract_journeys, readiness_count

DAY = date(2024, 5, 1)


def _engine(tmp_path, name):
    return sa.create_engine(f"sqlite:///{tmp_path / name}")


def _dump(engine):
    with engine.connect() as conn:
        return {
            table: [tuple(row) for row in conn.execute(sa.text(f"SELECT * FROM {table} ORDER BY {key}"))]
            for table, key in (("healthpro", "etl_row_id"), ("redcap", "record_id"))
        }


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    engine = sa.create_engine(f"sqlite:///{tmp_path_factory.mktemp('gen') / 'source.db'}")
    stats = generate_source(engine, participants=4000, seed=7, day=DAY)
    yield engine, stats
    engine.dispose()


def test_same_seed_same_data_other_seed_other_data(tmp_path):
    first, second, third = (_engine(tmp_path, f"{n}.db") for n in range(3))
    stats_first = generate_source(first, participants=300, seed=21, day=DAY)
    stats_second = generate_source(second, participants=300, seed=21, day=DAY)
    generate_source(third, participants=300, seed=22, day=DAY)
    assert stats_first == stats_second
    assert _dump(first) == _dump(second)
    assert _dump(first) != _dump(third)
    assert generate_pardot_contacts(
        first, mix=PardotMix(single=4, ambiguous=2, contested=1, near_miss=2, unrelated=3), seed=1
    ) == generate_pardot_contacts(
        second, mix=PardotMix(single=4, ambiguous=2, contested=1, near_miss=2, unrelated=3), seed=1
    )


def test_generating_again_replaces_the_rows(tmp_path):
    engine = _engine(tmp_path, "again.db")
    generate_source(engine, participants=200, seed=1, day=DAY)
    stats = generate_source(engine, participants=50, seed=2, day=DAY)
    assert readiness_count(engine, day=DAY) == 50
    assert len(_dump(engine)["healthpro"]) == stats.healthpro_rows


def test_the_documented_mix(source):
    engine, stats = source
    n = stats.participants
    assert stats.day == DAY
    assert 0.82 < stats.paired_organization / n < 0.88
    assert stats.other_organizations == n - stats.paired_organization
    assert 0.01 < stats.withdrawn / n < 0.035
    assert 0 < stats.withdrawn_in_paired_organization <= stats.withdrawn
    assert 0 < stats.duplicate_rows < 0.02 * n
    assert stats.healthpro_rows == n + stats.duplicate_rows
    assert 0.70 < stats.with_redcap / n < 0.80
    assert stats.redcap_rows > stats.with_redcap  # second records and screening records
    assert stats.sentinel_dates > n  # in several columns per participant
    assert stats.lower_case_states > 0.02 * n
    assert stats.invalid_states > 0.01 * n
    assert 0.04 < stats.invalid_phones / n < 0.08
    assert readiness_count(engine, day=DAY) == n  # stale duplicate rows are yesterday's


def test_the_mix_as_the_views_show_it(source):
    engine, stats = source
    contacts = list(extract_contacts(engine))
    journeys = list(extract_journeys(engine))
    assert len(contacts) == len(journeys) == stats.paired_organization
    assert sum(c["withdrawn"] for c in contacts) == stats.withdrawn_in_paired_organization
    assert sum(j["HP_Withdrawal_Status__c"] for j in journeys) == stats.withdrawn_in_paired_organization
    states = Counter(c["MailingState"] for c in contacts)
    assert states["NEW YORK"] > 0.5 * len(contacts)
    assert states["NEW JERSEY"] > 0.2 * len(contacts)
    assert 0 < states[""] < 0.06 * len(contacts)
    assert len(states) > 10
    assert all(c["Email"] == c["Email"].strip().lower() for c in contacts)
    assert 0.05 < sum(not c["Email"] for c in contacts) / len(contacts) < 0.10
    assert 0.03 < sum(not c["Phone"] for c in contacts) / len(contacts) < 0.09
    assert sum(c["Birthdate"] == "" for c in contacts) > 0
    assert sum(c["CH_REDCap_Record_ID__c"] == "" for c in contacts) > 0.15 * len(contacts)
    assert sum(c["DV_Enrollment__c"] for c in contacts) > 0
    assert all(j["HP_General_Consent_Date__c"] < DAY.isoformat() for j in journeys)


def test_pardot_contacts_give_the_promised_decisions(source):
    engine, _ = source
    mix = PardotMix(single=30, ambiguous=8, contested=4, near_miss=6, unrelated=40)
    contacts = generate_pardot_contacts(engine, mix=mix, seed=3)
    config = AouConfig()
    assert len(contacts) == 30 + 2 * 8 + 4 + 6 + 40
    assert len({c["Id"] for c in contacts}) == len(contacts)
    for contact in contacts:
        assert set(contact) == {"Id", "FirstName", "LastName", "Email", "Phone", "OwnerId", "HP_PMI_ID__c"}
        assert contact["HP_PMI_ID__c"] is None
        assert contact["OwnerId"] in config.pardot_owner_ids
    decisions = list(match_pardot(extract_contacts(engine), contacts, owner_ids=config.pardot_owner_ids))
    outcomes = Counter(d.outcome for d in decisions)
    reasons = Counter(d.reason for d in decisions)
    assert outcomes["claim"] == 30
    assert reasons["several_candidates"] == 8
    assert reasons["contested"] == 8
    claimed = [d.contact_id for d in decisions if d.outcome == "claim"]
    assert len(set(claimed)) == 30


def test_pardot_mix_too_large_for_the_source_is_refused(tmp_path):
    engine = _engine(tmp_path, "small.db")
    generate_source(engine, participants=20, seed=1, day=DAY)
    with pytest.raises(ValueError, match="Pardot mix needs"):
        generate_pardot_contacts(engine, mix=PardotMix(single=50, contested=0))


def test_mutate_source_changes_the_counted_participants(staging_url):
    engine = sa.create_engine(staging_url)
    try:
        generate_source(engine, participants=600, seed=4, day=DAY)
        contacts = {c["HP_PMI_ID__c"]: c for c in extract_contacts(engine)}
        journeys = {j["HP_PMI_ID__c"]: j for j in extract_journeys(engine)}
        changed = mutate_source(engine, fraction=0.1, seed=5, day=date(2024, 5, 2))
        assert changed == round(0.1 * len(contacts))
        after_contacts = {c["HP_PMI_ID__c"]: c for c in extract_contacts(engine)}
        after_journeys = {j["HP_PMI_ID__c"]: j for j in extract_journeys(engine)}
        assert after_contacts.keys() == contacts.keys()
        differing = {
            pmi
            for pmi in contacts
            if contacts[pmi] != after_contacts[pmi] or journeys[pmi] != after_journeys[pmi]
        }
        assert len(differing) == changed
        withdrawals = {
            pmi for pmi in differing if after_contacts[pmi]["withdrawn"] and not contacts[pmi]["withdrawn"]
        }
        assert withdrawals  # about one in ten changes is a new withdrawal
        assert all(after_journeys[pmi]["HP_Withdrawal_Date__c"] == "2024-05-01" for pmi in withdrawals)
        # The mutated load is dated 2024-05-02: it, not the earlier one, is what is counted.
        assert readiness_count(engine, day=date(2024, 5, 2)) == 600
        assert readiness_count(engine, day=date(2024, 5, 3)) == 0
        # The same seed again still changes what it counts (new values differ from current ones).
        again = mutate_source(engine, fraction=0.1, seed=5)
        final_contacts = {c["HP_PMI_ID__c"]: c for c in extract_contacts(engine)}
        final_journeys = {j["HP_PMI_ID__c"]: j for j in extract_journeys(engine)}
        changed_again = {
            pmi
            for pmi in final_contacts
            if final_contacts[pmi] != after_contacts[pmi] or final_journeys[pmi] != after_journeys[pmi]
        }
        assert len(changed_again) == again == changed
    finally:
        engine.dispose()


def test_mutate_source_is_deterministic(tmp_path):
    results = []
    for name in ("a.db", "b.db"):
        engine = _engine(tmp_path, name)
        generate_source(engine, participants=300, seed=8, day=DAY)
        results.append((mutate_source(engine, fraction=0.2, seed=9), _dump(engine)))
    assert results[0] == results[1]
    assert results[0][0] > 0


def test_bad_arguments_are_refused(tmp_path):
    engine = _engine(tmp_path, "bad.db")
    with pytest.raises(ValueError, match="participants"):
        generate_source(engine, participants=-1)
    with pytest.raises(ValueError, match="fraction"):
        mutate_source(engine, fraction=1.5, seed=1)

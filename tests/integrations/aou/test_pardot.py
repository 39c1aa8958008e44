"""SQL Server's SOUNDEX/DIFFERENCE in Python, and the Pardot claim."""

from __future__ import annotations

import pytest

from crm_sync.integrations.aou.pardot import ClaimDecision, difference, match_pardot, soundex


@pytest.mark.parametrize(
    ("name", "code"),
    [
        # Microsoft's SOUNDEX and DIFFERENCE pages.
        ("Smith", "S530"),
        ("Smythe", "S530"),
        ("Green", "G650"),
        ("Greene", "G650"),
        ("Blotchet-Halls", "B432"),
        ("Washington", "W252"),
        # NARA's coding rules, which SQL Server follows from compatibility level 110.
        ("Robert", "R163"),
        ("Rupert", "R163"),
        ("Rubin", "R150"),
        ("Lee", "L000"),
        ("Gutierrez", "G362"),
        ("Jackson", "J250"),
        ("Tymczak", "T522"),
        ("VanDeusen", "V532"),
        ("Honeyman", "H555"),
        ("Pfister", "P236"),  # side-by-side rule applies to the first letter too (P123 before level 110)
        ("Ashcraft", "A261"),  # H does not separate s and c (A226 before level 110)
        ("Ashcroft", "A261"),
        # Lower case, and the first word only.
        ("tymczak", "T522"),
        ("O'Brien", "O000"),
        ("Smith-Jones", "S530"),
        ("Van Dyke", "V500"),
    ],
)
def test_soundex_matches_sql_server(name, code):
    assert soundex(name) == code


@pytest.mark.parametrize("value", ["", None, "123", " Smith", "-Smith", "Émile"])
def test_soundex_without_a_leading_letter_is_empty(value):
    assert soundex(value) == ""


@pytest.mark.parametrize(
    ("left", "right", "score"),
    [
        ("Green", "Greene", 4),  # Microsoft's DIFFERENCE examples
        ("Blotchet-Halls", "Greene", 0),
        ("Smithers", "Smythers", 4),
        ("Anothers", "Brothers", 2),
        ("Smith", "Smith", 4),  # Sybase (SQL Server's ancestor) examples
        ("Smith", "Sweeney", 3),
        ("Smith", "Jones", 2),
        ("Smith", "Rubin", 1),
        ("Smith", "Wilkins", 0),
        ("Catherine", "Katherine", 3),  # a near miss
        ("", "", 0),  # blank names never match
        (None, "Smith", 0),
    ],
)
def test_difference_matches_sql_server(left, right, score):
    assert difference(left, right) == score
    assert difference(right, left) == score


def _person(pmi, first, last, email="", phone=""):
    return {"HP_PMI_ID__c": pmi, "FirstName": first, "LastName": last, "Email": email, "Phone": phone}


def _lead(contact_id, first, last, email="", phone="", owner="PARDOT", pmi=None):
    return {
        "Id": contact_id,
        "FirstName": first,
        "LastName": last,
        "Email": email,
        "Phone": phone,
        "OwnerId": owner,
        "HP_PMI_ID__c": pmi,
    }


def _decide(participants, contacts, **kwargs):
    return {decision.pmi_id: decision for decision in match_pardot(participants, contacts, **kwargs)}


def test_single_match_by_email_claims():
    decisions = _decide(
        [_person("P1", "John", "Smith", email="john.smith@example.com", phone="(212) 555-0100")],
        [_lead("003A", "Jon", "SMYTH", email="  John.Smith@Example.com"), _lead("003B", "John", "Smith")],
    )
    assert decisions["P1"] == ClaimDecision("P1", "claim", "003A", ("003A",), "single_candidate")


def test_single_match_by_phone_in_another_format_claims():
    decisions = _decide(
        [_person("P1", "Maria", "Garcia", email="maria@example.org", phone="(212) 555-0100")],
        [_lead("003A", "Marie", "Garcia", email="old@example.net", phone="212-555-0100")],
    )
    assert decisions["P1"].outcome == "claim"
    assert decisions["P1"].contact_id == "003A"


def test_two_candidates_are_ambiguous_never_guessed():
    decisions = _decide(
        [_person("P1", "Ana", "Lopez", email="ana@example.com", phone="(646) 555-0101")],
        [
            _lead("003B", "Ana", "Lopez", email="ana@example.com"),
            _lead("003A", "ANA", "Lopes", phone="+1 646 555 0101"),
        ],
    )
    assert decisions["P1"] == ClaimDecision("P1", "ambiguous", None, ("003A", "003B"), "several_candidates")


def test_one_contact_matched_by_two_participants_makes_both_ambiguous():
    decisions = _decide(
        [
            _person("P1", "Jon", "Lee", email="family@example.com"),
            _person("P2", "John", "Lee", phone="(917) 555-0102"),
            _person("P3", "Omar", "Khan", email="omar@example.com"),
        ],
        [
            _lead("003A", "John", "Lee", email="family@example.com", phone="917-555-0102"),
            _lead("003C", "Omar", "Khan", email="omar@example.com"),
        ],
    )
    assert decisions["P1"] == ClaimDecision("P1", "ambiguous", None, ("003A",), "contested")
    assert decisions["P2"] == ClaimDecision("P2", "ambiguous", None, ("003A",), "contested")
    assert decisions["P3"].outcome == "claim"


def test_contact_also_matched_by_an_ambiguous_participant_is_not_claimed():
    decisions = _decide(
        [
            _person("P1", "Sam", "Hall", email="sam@example.com"),
            _person("P2", "Sam", "Hall", phone="(212) 555-0103"),
        ],
        [
            _lead("003A", "Sam", "Hall", email="sam@example.com", phone="2125550103"),
            _lead("003B", "Sam", "Hall", phone="2125550103"),
        ],
    )
    assert decisions["P2"].reason == "several_candidates"
    assert decisions["P1"].reason == "contested"


def test_near_miss_name_does_not_claim():
    decisions = _decide(
        [
            _person("P1", "Catherine", "Young", email="cy@example.com"),
            _person("P2", "Jose", "Rivera", email="household@example.com"),
        ],
        [
            _lead("003A", "Katherine", "Young", email="cy@example.com"),  # DIFFERENCE 3 on the first name
            _lead("003B", "Maria", "Rivera", email="household@example.com"),
        ],  # same email, another person
    )
    assert decisions["P1"] == ClaimDecision("P1", "none", None, (), "no_candidate")
    assert decisions["P2"].outcome == "none"


def test_no_match_without_a_shared_email_or_phone():
    decisions = _decide(
        [_person("P1", "Grace", "Kim", email="grace@example.com", phone="(212) 555-0104")],
        [_lead("003A", "Grace", "Kim", email="other@example.com", phone="(212) 555-0105")],
    )
    assert decisions["P1"].outcome == "none"


def test_blank_and_invalid_keys_never_match():
    decisions = _decide(
        [
            _person("P1", "Wei", "Chen"),
            _person("P2", "", "", email="x@example.com"),
            _person("P3", "Mei", "Wang", phone="555-0100"),
        ],
        [
            _lead("003A", "Wei", "Chen"),
            _lead("003B", "", "", email="x@example.com"),
            _lead("003C", "Mei", "Wang", phone="555-0100"),
        ],
    )
    assert {d.outcome for d in decisions.values()} == {"none"}


def test_contacts_already_claimed_or_of_other_owners_are_skipped():
    people = [_person("P1", "Raj", "Patel", email="raj@example.com")]
    claimed = [_lead("003A", "Raj", "Patel", email="raj@example.com", pmi="P7")]
    assert _decide(people, claimed)["P1"].outcome == "none"
    other_owner = [_lead("003B", "Raj", "Patel", email="raj@example.com", owner="005OTHER")]
    assert _decide(people, other_owner, owner_ids={"PARDOT"})["P1"].outcome == "none"
    assert _decide(people, other_owner)["P1"].outcome == "claim"


def test_decisions_keep_the_participants_order_on_a_large_batch():
    count = 20_000
    people = [_person(f"P{n:06d}", "Amara", "Okafor", email=f"a{n}@example.com") for n in range(count)]
    leads = [_lead(f"003{n:06d}", "Amara", "Okafor", email=f"a{n}@example.com") for n in range(0, count, 2)]
    decisions = list(match_pardot(reversed(people), leads))
    assert [d.pmi_id for d in decisions] == [p["HP_PMI_ID__c"] for p in reversed(people)]
    assert sum(d.outcome == "claim" for d in decisions) == count // 2
    assert all(d.contact_id == "003" + d.pmi_id[1:] for d in decisions if d.outcome == "claim")

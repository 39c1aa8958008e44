"""Synthetic AOU source data: HealthPro and REDCap rows, Pardot contacts, a second-day change.

Everything is deterministic for a given seed (and independent of the database), so the demo,
the tests and the benchmarks can state what a run must do. No real person is in here: names
come from short common-name lists, emails use reserved example domains, and phone numbers
are unique by construction.

The mix :func:`generate_source` writes (shares of participants, roughly):

* 85% in the configured paired organisation, the rest in five others or none (filtered out);
* 2% withdrawn; 5% DV enrolments;
* state codes: the city's (New York City, Yonkers, northern New Jersey), 5% another state,
  4% lower-case or padded, 2% invalid, 1% NULL;
* emails: 30% mixed case, 10% padded with spaces, 5% NULL, 2% empty;
* phones in eight formats, 6% invalid (short, with an extension, text, NULL);
* ``1900-01-01`` in some birth, withdrawal and survey dates; NULL in others;
* 75% with a REDCap record (1% with two; the higher ``record_id`` wins), REDCap NULLs,
  ``pmi_id`` typed in lower case or with spaces; plus REDCap screening records without PMI ID;
* 0.5% with a stale earlier load row and 0.2% loaded twice the same day (duplicates the
  reporting base must collapse).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final

import sqlalchemy as sa

from crm_sync.integrations.aou.config import AouConfig
from crm_sync.integrations.aou.pardot import difference, soundex
from crm_sync.integrations.aou.source import create_source_schema, extract_contacts, sql_dialect
from crm_sync.integrations.aou.transforms import (
    DATE_SENTINEL,
    STATE_NAMES,
    format_date,
    normalise_email,
    normalise_text,
)

__all__ = [
    "GeneratedStats",
    "PardotMix",
    "generate_pardot_contacts",
    "generate_source",
    "mutate_source",
]

_CHUNK: Final = 5000
_SENTINEL: Final = date.fromisoformat(DATE_SENTINEL)
_PROGRAM_START: Final = date(2018, 5, 6)
_LOAD_TIME: Final = time(3, 0)

# fmt: off
FIRST_NAMES: Final = (
    "James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "William",
    "Elizabeth", "David", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah",
    "Charles", "Karen", "Christopher", "Nancy", "Daniel", "Lisa", "Matthew", "Margaret",
    "Anthony", "Sandra", "Mark", "Ashley", "Jose", "Maria", "Luis", "Carmen", "Juan", "Rosa",
    "Carlos", "Ana", "Miguel", "Lucia", "Wei", "Mei", "Hiroshi", "Yuki", "Kwame", "Amara",
    "Dmitri", "Olga", "Aisha", "Omar", "Priya", "Raj", "Fatima", "Ahmed", "Grace", "Samuel",
    "Catherine", "Katherine", "Tyrone", "Keisha",
)
LAST_NAMES: Final = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
    "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez",
    "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright",
    "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall",
    "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Chen", "Wang", "Kim", "Patel",
    "O'Brien", "Smith-Jones", "Tymczak", "Ashcraft", "Pfister", "Okafor",
)
# fmt: on
_SPELLING_VARIANTS: Final = {  # same SOUNDEX code: a Pardot lead typed by hand
    "John": "Jon",
    "Catherine": "Cathryn",
    "Smith": "Smyth",
    "Jones": "Jonas",
    "Mary": "Marie",
    "Sarah": "Sara",
    "Mark": "Marc",
    "Lisa": "Liza",
    "Grace": "Grayce",
}
_STREETS: Final = (
    "Broadway",
    "Amsterdam Ave",
    "St Nicholas Ave",
    "W 168th St",
    "Fort Washington Ave",
    "Dyckman St",
    "Grand Concourse",
    "Lenox Ave",
    "Riverside Dr",
    "Audubon Ave",
    "Nagle Ave",
    "E Tremont Ave",
    "Jerome Ave",
    "Frederick Douglass Blvd",
    "Convent Ave",
)
_CITIES: Final = (
    ("New York", "NY", "100"),
    ("Bronx", "NY", "104"),
    ("Brooklyn", "NY", "112"),
    ("Yonkers", "NY", "107"),
    ("Jersey City", "NJ", "073"),
    ("Fort Lee", "NJ", "070"),
)
_AREA_CODES: Final = ("212", "646", "332", "718", "347", "929", "917", "201")
_OTHER_ORGS: Final = ("COLUMBIA_HARLEM", "NYC_HHC", "WEILL_CORNELL", "NYU_LANGONE", "MOUNT_SINAI")
_STATUSES: Final = ("Participant", "Participant + EHR Consent", "Core Participant")
_SEXES: Final = ("Female", "Female", "Male", "Male", "Intersex", "Other", "Skip", "Unknown")
_GENDERS: Final = ("Woman", "Man", "Non-binary", "Transgender", "Additional options", "Skip")
_RACES: Final = (
    "Hispanic, Latino, or Spanish",
    "Black, African American, or African",
    "White",
    "Asian",
    "More than one race/ethnicity",
    "Middle Eastern or North African",
    "Skip",
)
_LANGUAGES: Final = ("English", "English", "English", "Spanish", "Spanish", "Other")
_LEARNED: Final = ("Clinic visit", "Flyer", "Friend or family", "Community event", "Social media", "Other")
_PROVIDERS: Final = (
    "ColumbiaDoctors Internal Medicine",
    "NYP Ambulatory Care Network",
    "Farrell Community Health",
    "Other",
)
_OUTREACH: Final = ("Washington Heights clinic day", "Harlem health fair", "Inwood library", "Bronx outreach")
_EMAIL_DOMAINS: Final = ("example.com", "example.org", "example.net")
_INVALID_STATES: Final = ("XX", "N.Y.", "NYC", "New York", "ZZ")
_SURVEY_SHARES: Final = {  # share of participants who completed each survey
    "Basics PPI Survey Completion Date": 0.97,
    "Health PPI Survey Completion Date": 0.95,
    "Lifestyle PPI Survey Completion Date": 0.93,
    "Hist PPI Survey Completion Date": 0.45,
    "Access PPI Survey Completion Date": 0.44,
    "Family PPI Survey Completion Date": 0.42,
    "Personal Medical History PPI Survey Completion Date": 0.40,
    "COPE May PPI Survey Completion Date": 0.20,
    "COPE June PPI Survey Completion Date": 0.18,
    "COPE July PPI Survey Completion Date": 0.16,
}
_BIOSPECIMEN_COLUMNS: Final = tuple(
    f"{tube} Collection Date"
    for tube in (
        "8 mL SST",
        "8 mL PST",
        "4 mL Na-Hep",
        "4 mL EDTA",
        "1st 10 mL EDTA",
        "2nd 10 mL EDTA",
        "Saliva",
        "Urine 10 mL",
        "2 mL EDTA",
        "Cell-Free DNA",
        "Paxgene RNA",
        "Urine 90 mL",
    )
)


@dataclass(frozen=True)
class GeneratedStats:
    """What :func:`generate_source` wrote; counts are of participants unless they say rows."""

    day: date
    participants: int
    healthpro_rows: int
    redcap_rows: int
    paired_organization: int
    other_organizations: int
    withdrawn: int
    withdrawn_in_paired_organization: int
    duplicate_rows: int
    with_redcap: int
    sentinel_dates: int
    lower_case_states: int
    invalid_states: int
    invalid_phones: int


@dataclass(frozen=True)
class PardotMix:
    """How many Pardot contacts of each kind :func:`generate_pardot_contacts` makes.

    Attributes:
        single: participants matched by exactly one contact (half by email, half by phone).
        ambiguous: participants matched by two contacts (duplicate leads): reported, not claimed.
        contested: contacts matched by two participants each: both reported, none claimed.
        near_miss: contacts sharing a participant's email whose first name sounds different.
        unrelated: contacts matching nobody.
    """

    single: int = 50
    ambiguous: int = 10
    contested: int = 5
    near_miss: int = 10
    unrelated: int = 100


def generate_source(
    engine: sa.engine.Engine,
    *,
    participants: int = 5000,
    seed: int = 7,
    day: date | None = None,
    paired_organization: str | None = None,
) -> GeneratedStats:
    """Replace the source tables' rows with a synthetic load of ``day`` (default today, UTC).

    Creates the schema and views if missing. Deterministic for a given seed.

    Args:
        engine: the source database (SQLite, PostgreSQL or SQL Server).
        participants: distinct participants to write.
        seed: the random seed.
        day: the load day, written to ``etl_loaded_at``; dates in the data precede it.
        paired_organization: the organisation most participants belong to (default: the config's).
    """
    if participants < 0:
        raise ValueError("participants must be >= 0")
    day = day or datetime.now(UTC).date()
    organisation = paired_organization or AouConfig().paired_organization
    rng = random.Random(seed)  # noqa: S311 - synthetic data, not secrets
    builder = _SourceBuilder(rng, day, organisation)
    healthpro, redcap = builder.build(participants)
    create_source_schema(engine)
    tables = _tables(engine)
    with engine.begin() as conn:
        conn.execute(tables["redcap"].delete())
        conn.execute(tables["healthpro"].delete())
        _insert(conn, tables["healthpro"], healthpro)
        _insert(conn, tables["redcap"], redcap)
    return builder.stats(participants, healthpro, redcap)


def generate_pardot_contacts(
    engine: sa.engine.Engine,
    *,
    mix: PardotMix | None = None,
    config: AouConfig | None = None,
    seed: int = 7,
) -> list[dict[str, Any]]:
    """Return Salesforce Contacts as Pardot created them (no PMI ID) for the generated source.

    Reads the configured organisation's participants from the source and builds, for
    disjoint participants, the kinds of :class:`PardotMix`. Every participant is treated as
    new, so :func:`crm_sync.integrations.aou.pardot.match_pardot` over the source's contacts
    gives exactly ``single`` claims, ``ambiguous + 2 * contested`` ambiguous decisions, and no
    claim for the near misses.

    Raises:
        ValueError: the source has too few participants with email and phone for the mix.
    """
    mix = mix or PardotMix()
    config = config or AouConfig()
    rng = random.Random(seed)  # noqa: S311 - synthetic data, not secrets
    people = [
        row
        for row in extract_contacts(engine, config=config)
        if row["Email"] and row["Phone"] and soundex(row["FirstName"]) and soundex(row["LastName"])
    ]
    owners = config.pardot_owner_ids
    ids = (f"0030a00003Prd{n:05d}" for n in range(1, 10**5))
    contacts: list[dict[str, Any]] = []

    def add(first: str, last: str, email: str, phone: str) -> None:
        contacts.append(
            {
                "Id": next(ids),
                "FirstName": first,
                "LastName": last,
                "Email": email,
                "Phone": phone,
                "OwnerId": rng.choice(owners),
                "HP_PMI_ID__c": None,
            }
        )

    contested = _contested_pairs(people, mix.contested, rng)
    taken = {row["HP_PMI_ID__c"] for pair in contested for row in pair}
    pool = [row for row in people if row["HP_PMI_ID__c"] not in taken]
    needed = mix.single + mix.ambiguous + mix.near_miss
    if len(pool) < needed:
        raise ValueError(f"the source has {len(pool)} usable participants; the Pardot mix needs {needed}")
    chosen = rng.sample(pool, needed)
    singles, ambiguous, near = (
        chosen[: mix.single],
        chosen[mix.single : mix.single + mix.ambiguous],
        chosen[mix.single + mix.ambiguous :],
    )
    for n, row in enumerate(singles):
        first, last = _SPELLING_VARIANTS.get(row["FirstName"], row["FirstName"]), row["LastName"]
        if n % 2:  # by phone: Pardot kept an old address
            add(first, last.upper(), f"old.{n}@example.net", _reformat_phone(row["Phone"], rng))
        else:  # by email, typed in capitals (Salesforce keeps an email's case), no phone
            add(first.lower(), last, row["Email"].upper(), "")
    for n, row in enumerate(ambiguous):
        add(row["FirstName"], row["LastName"], row["Email"], "")
        add(
            row["FirstName"].upper(),
            _SPELLING_VARIANTS.get(row["LastName"], row["LastName"]),
            f"dup.{n}@example.net",
            _reformat_phone(row["Phone"], rng),
        )
    for first_row, second_row in contested:
        add(first_row["FirstName"], first_row["LastName"], first_row["Email"], second_row["Phone"])
    for row in near:
        # A household member on the same email: a first name one SOUNDEX position off if the
        # list has one (Catherine/Katherine), else any that sounds different.
        others = [name for name in FIRST_NAMES if difference(name, row["FirstName"]) == 3] or [
            name for name in FIRST_NAMES if soundex(name) != soundex(row["FirstName"])
        ]
        add(rng.choice(others), row["LastName"], row["Email"], "")
    for n in range(mix.unrelated):
        add(
            rng.choice(FIRST_NAMES),
            rng.choice(LAST_NAMES),
            f"lead{n}@pardot-leads.example",
            f"(303) {200 + n // 10000 % 800:03d}-{n % 10000:04d}",
        )
    rng.shuffle(contacts)
    return contacts


def mutate_source(
    engine: sa.engine.Engine,
    *,
    fraction: float,
    seed: int,
    day: date | None = None,
    paired_organization: str | None = None,
) -> int:
    """Change some participants of the paired organisation for the demo's second run.

    Each chosen participant gets one or two of: a new street address, a new email, a new
    survey completion date, or (about one in ten, if not withdrawn yet) a withdrawal. With
    ``day``, the latest load is moved to that day, as the nightly reload would.

    Returns:
        How many participants changed (each changes its Contact row, its journey row, or both).
    """
    if not 0 <= fraction <= 1:
        raise ValueError("fraction must be within [0, 1]")
    organisation = paired_organization or AouConfig().paired_organization
    table = _tables(engine)["healthpro"]
    c = table.c
    with engine.begin() as conn:
        rows = (
            conn.execute(
                sa.select(
                    c.etl_row_id,
                    c["PMI ID"],
                    c.etl_loaded_at,
                    c["Withdrawal Status"],
                    c["Paired Organization"],
                    c["Street Address"],
                    c["Email"],
                    c["COPE July PPI Survey Completion Date"],
                )
            )
            .mappings()
            .all()
        )
        latest = _latest_rows(rows)
        current = sorted(
            (row for row in latest.values() if (row["Paired Organization"] or "").strip() == organisation),
            key=lambda row: row["PMI ID"],
        )
        rng = random.Random(seed)  # noqa: S311 - synthetic data, not secrets
        chosen = rng.sample(current, round(fraction * len(current)))
        updates: dict[str, list[dict[str, Any]]] = defaultdict(list)
        load_day = max((_as_datetime(row["etl_loaded_at"]) for row in rows), default=None)
        for row in chosen:
            for kind in _mutation_kinds(rng, withdrawn=row["Withdrawal Status"] == 1):
                updates[kind].append(_mutation(kind, row, rng, day or (load_day or datetime.now(UTC)).date()))
        for kind, params in updates.items():
            values = {name: sa.bindparam(f"new_{n}") for n, name in enumerate(_MUTATED_COLUMNS[kind])}
            statement = table.update().where(c.etl_row_id == sa.bindparam("row_id")).values(values)
            conn.execute(statement, params)
        if day is not None and load_day is not None:
            conn.execute(
                table.update()
                .where(c.etl_loaded_at >= datetime.combine(load_day.date(), time.min))
                .values(etl_loaded_at=datetime.combine(day, _LOAD_TIME))
            )
    return len(chosen)


# --- building rows ----------------------------------------------------------------------


class _SourceBuilder:
    """Draws participants one by one from one random stream (so the order is the contract)."""

    def __init__(self, rng: random.Random, day: date, organisation: str) -> None:
        self.rng = rng
        self.day = day
        self.organisation = organisation
        self.loaded_at = datetime.combine(day, _LOAD_TIME)
        self.counts: dict[str, int] = defaultdict(int)

    def build(self, participants: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        healthpro: list[dict[str, Any]] = []
        redcap: list[dict[str, Any]] = []
        record_id = 0
        for index in range(participants):
            row = self._participant(index)
            roll = self.rng.random()
            if roll < 0.005:  # a stale row from yesterday's load, with older contact details
                stale = dict(
                    row,
                    **{
                        "Email": None,
                        "Street Address": "1 Old Address Rd",
                        "etl_loaded_at": self.loaded_at - timedelta(days=1),
                    },
                )
                healthpro.append(stale)
                self.counts["duplicate_rows"] += 1
            elif roll < 0.007:  # loaded twice the same day
                healthpro.append(dict(row))
                self.counts["duplicate_rows"] += 1
            healthpro.append(row)
            if self.rng.random() < 0.75:
                self.counts["with_redcap"] += 1
                copies = 2 if self.rng.random() < 0.01 else 1
                for _ in range(copies):
                    record_id += 1
                    redcap.append(self._redcap(record_id, row["PMI ID"]))
            if self.rng.random() < 0.03:  # a screening record that never enrolled
                record_id += 1
                redcap.append(self._redcap(record_id, None))
        for row_id, row in enumerate(healthpro, start=1):
            row["etl_row_id"] = row_id
        return healthpro, redcap

    def stats(
        self, participants: int, healthpro: Sequence[Mapping[str, Any]], redcap: Sequence[Mapping[str, Any]]
    ) -> GeneratedStats:
        counts = self.counts
        return GeneratedStats(
            day=self.day,
            participants=participants,
            healthpro_rows=len(healthpro),
            redcap_rows=len(redcap),
            paired_organization=counts["paired_organization"],
            other_organizations=participants - counts["paired_organization"],
            withdrawn=counts["withdrawn"],
            withdrawn_in_paired_organization=counts["withdrawn_in_paired_organization"],
            duplicate_rows=counts["duplicate_rows"],
            with_redcap=counts["with_redcap"],
            sentinel_dates=counts["sentinel_dates"],
            lower_case_states=counts["lower_case_states"],
            invalid_states=counts["invalid_states"],
            invalid_phones=counts["invalid_phones"],
        )

    def _participant(self, index: int) -> dict[str, Any]:
        rng = self.rng
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        org_roll = rng.random()
        organisation = (
            self.organisation if org_roll < 0.85 else None if org_roll < 0.855 else rng.choice(_OTHER_ORGS)
        )
        in_org = organisation == self.organisation
        self.counts["paired_organization"] += in_org
        withdrawn = rng.random() < 0.02
        if withdrawn:
            self.counts["withdrawn"] += 1
            self.counts["withdrawn_in_paired_organization"] += in_org
        general = self._date_between(_PROGRAM_START, self.day - timedelta(days=30))
        city, state, zip_prefix = rng.choice(_CITIES)
        row: dict[str, Any] = {
            "PMI ID": f"P{100_000_000 + index}",
            "Biobank ID": f"Y{200_000_000 + index}",
            "Last Name": f" {last}" if rng.random() < 0.01 else last,
            "First Name": f"{first} " if rng.random() < 0.01 else first,
            "Date of Birth": self._maybe_sentinel(
                self._date_between(date(1935, 1, 1), date(2002, 12, 31)), sentinel=0.01, null=0.005
            ),
            "Language": rng.choice(_LANGUAGES),
            "Participant Status": rng.choice(_STATUSES),
            "General Consent Status": 1,
            "General Consent Date": general,
            "Street Address": f"{rng.randint(1, 2999)} {rng.choice(_STREETS)}"
            + (f" Apt {rng.randint(1, 20)}{rng.choice('ABCDEF')}" if rng.random() < 0.5 else ""),
            "City": city,
            "State": self._state(state),
            "ZIP": f"{zip_prefix}{rng.randint(0, 99):02d}",
            "Email": self._email(first, last, index),
            "Phone": self._phone(index),
            "Sex": rng.choice(_SEXES),
            "Gender Identity": rng.choice(_GENDERS),
            "Race/Ethnicity": rng.choice(_RACES),
            "Paired Site": None if organisation is None else f"{organisation}_SITE",
            "Paired Organization": organisation,
            "DV Enrollment": 1 if rng.random() < 0.05 else 0,
            "etl_loaded_at": self.loaded_at,
        }
        for name, share in (("EHR", 0.8), ("gROR", 0.5)):
            consented = rng.random() < share
            row[f"{name} Consent Status"] = 1 if consented else 0
            row[f"{name} Consent Date"] = (
                self._date_between(general, self.day - timedelta(days=1))
                if consented
                else self._maybe_sentinel(None, sentinel=0.5, null=1.0)
            )
        row["Withdrawal Status"] = 1 if withdrawn else 0
        row["Withdrawal Date"] = (
            self._date_between(general, self.day - timedelta(days=1))
            if withdrawn
            else self._maybe_sentinel(None, sentinel=0.7, null=1.0)
        )
        for column, share in _SURVEY_SHARES.items():
            done = rng.random() < share
            row[column] = (
                self._maybe_sentinel(self._date_between(general, self.day - timedelta(days=1)), sentinel=0.01)
                if done
                else self._maybe_sentinel(None, sentinel=0.3, null=1.0)
            )
        measured = rng.random() < 0.8
        row["Physical Measurements Completion Date"] = (
            self._date_between(general, self.day - timedelta(days=1)) if measured else None
        )
        sampled = measured and rng.random() < 0.9
        row["Samples for DNA Received"] = 1 if sampled else 0
        collected = self._date_between(general, self.day - timedelta(days=1)) if sampled else None
        for column in _BIOSPECIMEN_COLUMNS:
            row[column] = collected if collected and rng.random() < 0.85 else None
        return row

    def _redcap(self, record_id: int, pmi_id: str | None) -> dict[str, Any]:
        rng = self.rng
        typed = pmi_id
        if pmi_id is not None:
            roll = rng.random()
            typed = pmi_id.lower() if roll < 0.05 else f" {pmi_id} " if roll < 0.10 else pmi_id
        return {
            "record_id": record_id,
            "pmi_id": typed,
            "org": "Columbia",
            "aou_enroller": self._uni() if rng.random() < 0.6 else None,
            "spec_provider": rng.choice(_PROVIDERS) if rng.random() < 0.3 else None,
            "other_details": "Prefers evening calls" if rng.random() < 0.1 else None,
            "tech_asst": rng.choice((0, 0, 0, 1, None)),
            "learn_aou": rng.choice(_LEARNED) if rng.random() < 0.7 else None,
            "tech_asst_other": "Needs help with the app" if rng.random() < 0.05 else None,
            "clinical_outreach_name": rng.choice(_OUTREACH) if rng.random() < 0.2 else None,
            "etl_loaded_at": self.loaded_at,
        }

    def _uni(self) -> str:
        """Return a Columbia UNI: two or three initials and four digits."""
        letters = "abcdefghjkmnprstw"
        initials = "".join(self.rng.choice(letters) for _ in range(self.rng.choice((2, 3))))
        return f"{initials}{self.rng.randint(1000, 9999)}"

    def _state(self, usual: str) -> str | None:
        roll = self.rng.random()
        if roll < 0.01:
            return None
        if roll < 0.03:
            self.counts["invalid_states"] += 1
            return self.rng.choice(_INVALID_STATES)
        if roll < 0.07:
            self.counts["lower_case_states"] += 1
            return self.rng.choice((usual.lower(), f" {usual} ", usual.capitalize()))
        if roll < 0.12:
            return self.rng.choice(sorted(STATE_NAMES))
        return usual

    def _email(self, first: str, last: str, index: int) -> str | None:
        rng = self.rng
        roll = rng.random()
        if roll < 0.05:
            return None
        if roll < 0.07:
            return ""
        local = f"{first}.{last}".replace("'", "").replace(" ", "")
        email = f"{local}{index}@{rng.choice(_EMAIL_DOMAINS)}"
        email = email if rng.random() < 0.3 else email.lower()
        return f"  {email} " if rng.random() < 0.1 else email

    def _phone(self, index: int) -> str | None:
        rng = self.rng
        area = _AREA_CODES[index % len(_AREA_CODES)]
        exchange = f"{200 + index // 10_000 % 800:03d}"
        line = f"{index % 10_000:04d}"
        roll = rng.random()
        if roll < 0.06:
            self.counts["invalid_phones"] += 1
            return rng.choice(
                (f"{exchange}-{line}", f"{area}-{exchange}-{line} x12", "n/a", None, "000-000-0000")
            )
        formats: tuple[Callable[[], str], ...] = (
            lambda: f"({area}) {exchange}-{line}",
            lambda: f"{area}-{exchange}-{line}",
            lambda: f"{area}.{exchange}.{line}",
            lambda: f"{area}{exchange}{line}",
            lambda: f"+1 {area} {exchange} {line}",
            lambda: f"1-{area}-{exchange}-{line}",
            lambda: f" {area} {exchange} {line} ",
            lambda: f"{area}/{exchange}-{line}",
        )
        return rng.choice(formats)()

    def _date_between(self, first: date, last: date) -> date:
        if last <= first:
            return first
        return first + timedelta(days=self.rng.randint(0, (last - first).days))

    def _maybe_sentinel(self, value: date | None, *, sentinel: float, null: float = 0.0) -> date | None:
        roll = self.rng.random()
        if roll < sentinel:
            self.counts["sentinel_dates"] += 1
            return _SENTINEL
        return None if roll < null else value


# --- mutations --------------------------------------------------------------------------

_MUTATED_COLUMNS: Final = {
    "address": ("Street Address",),
    "email": ("Email",),
    "survey": ("COPE July PPI Survey Completion Date",),
    "withdrawal": ("Withdrawal Status", "Withdrawal Date"),
}


def _mutation_kinds(rng: random.Random, *, withdrawn: bool) -> list[str]:
    if not withdrawn and rng.random() < 0.1:
        return ["withdrawal"]
    kinds = ["address", "email", "survey"]
    return rng.sample(kinds, rng.choice((1, 1, 2)))


def _mutation(kind: str, row: Mapping[str, Any], rng: random.Random, day: date) -> dict[str, Any]:
    withdrawal = (1, day - timedelta(days=1))
    values = withdrawal if kind == "withdrawal" else (_fresh_value(kind, row, rng, day),)
    return {"row_id": row["etl_row_id"], **{f"new_{n}": value for n, value in enumerate(values)}}


def _fresh_value(kind: str, row: Mapping[str, Any], rng: random.Random, day: date) -> Any:
    """Return a new value for the column that the views show differently from the current one."""
    column = _MUTATED_COLUMNS[kind][0]
    shown = {"address": normalise_text, "email": normalise_email, "survey": format_date}[kind]
    while True:
        if kind == "address":
            value: Any = f"{rng.randint(3000, 9999)} {rng.choice(_STREETS)}"
        elif kind == "email":
            value = f"{row['PMI ID'].lower()}.{rng.randint(1000, 9999)}@example.org"
        else:
            value = day - timedelta(days=rng.randint(1, 30))
        if shown(value) != shown(row[column]):
            return value


def _latest_rows(rows: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    latest: dict[str, Mapping[str, Any]] = {}
    for row in rows:
        seen = latest.get(row["PMI ID"])
        rank = (_as_datetime(row["etl_loaded_at"]), row["etl_row_id"])
        if seen is None or rank > (_as_datetime(seen["etl_loaded_at"]), seen["etl_row_id"]):
            latest[row["PMI ID"]] = row
    return latest


def _as_datetime(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def _contested_pairs(
    people: Sequence[Mapping[str, Any]], count: int, rng: random.Random
) -> list[tuple[Mapping[str, Any], Mapping[str, Any]]]:
    """Pairs of participants whose names sound alike: one shared Pardot lead matches both."""
    by_sound: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for row in people:
        by_sound[(soundex(row["FirstName"]), soundex(row["LastName"]))].append(row)
    groups = [group for _, group in sorted(by_sound.items()) if len(group) >= 2]
    if len(groups) < count:
        raise ValueError(f"the source has {len(groups)} groups of alike names; the Pardot mix needs {count}")
    return [(group[0], group[1]) for group in rng.sample(groups, count)]


def _reformat_phone(formatted: str, rng: random.Random) -> str:
    digits = "".join(ch for ch in formatted if ch.isdigit())
    return rng.choice(
        (f"{digits[:3]}-{digits[3:6]}-{digits[6:]}", digits, f"+1 {digits[:3]} {digits[3:6]} {digits[6:]}")
    )


# --- tables -----------------------------------------------------------------------------


def _tables(engine: sa.engine.Engine) -> dict[str, sa.Table]:
    """Typed Core tables of the source, for inserts and updates (the DDL is schema.sql)."""
    schema = "dbo" if sql_dialect(engine) == "mssql" else None
    metadata = sa.MetaData(schema=schema)
    kinds = {"text": sa.String, "flag": sa.SmallInteger, "date": sa.Date}
    hp_columns = [sa.Column("etl_row_id", sa.Integer, primary_key=True)]
    hp_columns += [sa.Column(name, kinds[kind]) for name, kind in _HEALTHPRO_COLUMNS]
    hp_columns.append(sa.Column("etl_loaded_at", sa.DateTime))
    redcap = sa.Table(
        "redcap",
        metadata,
        sa.Column("record_id", sa.Integer, primary_key=True),
        *(
            sa.Column(name, sa.String)
            for name in ("pmi_id", "org", "aou_enroller", "spec_provider", "other_details")
        ),
        sa.Column("tech_asst", sa.SmallInteger),
        *(sa.Column(name, sa.String) for name in ("learn_aou", "tech_asst_other", "clinical_outreach_name")),
        sa.Column("etl_loaded_at", sa.DateTime),
    )
    return {"healthpro": sa.Table("healthpro", metadata, *hp_columns), "redcap": redcap}


_HEALTHPRO_COLUMNS: Final = (
    ("PMI ID", "text"),
    ("Biobank ID", "text"),
    ("Last Name", "text"),
    ("First Name", "text"),
    ("Date of Birth", "date"),
    ("Language", "text"),
    ("Participant Status", "text"),
    ("General Consent Status", "flag"),
    ("General Consent Date", "date"),
    ("EHR Consent Status", "flag"),
    ("EHR Consent Date", "date"),
    ("gROR Consent Status", "flag"),
    ("gROR Consent Date", "date"),
    ("Withdrawal Status", "flag"),
    ("Withdrawal Date", "date"),
    ("Street Address", "text"),
    ("City", "text"),
    ("State", "text"),
    ("ZIP", "text"),
    ("Email", "text"),
    ("Phone", "text"),
    ("Sex", "text"),
    ("Gender Identity", "text"),
    ("Race/Ethnicity", "text"),
    ("Paired Site", "text"),
    ("Paired Organization", "text"),
    *((column, "date") for column in _SURVEY_SHARES),
    ("Physical Measurements Completion Date", "date"),
    ("Samples for DNA Received", "flag"),
    *((column, "date") for column in _BIOSPECIMEN_COLUMNS),
    ("DV Enrollment", "flag"),
)


def _insert(conn: sa.engine.Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    names = [column.name for column in table.columns]
    if conn.dialect.name == "mssql" and "etl_row_id" in names:
        names.remove("etl_row_id")  # an IDENTITY column numbers itself
    if conn.dialect.driver == "psycopg":
        # COPY is several times faster than executemany for a bulk load, in the same transaction.
        quote = conn.dialect.identifier_preparer.quote
        target = f"{conn.dialect.identifier_preparer.format_table(table)} ({', '.join(map(quote, names))})"
        driver_connection = conn.connection.driver_connection
        with driver_connection.cursor() as cursor, cursor.copy(f"COPY {target} FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row.get(name) for name in names])
        return
    statement = table.insert()
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start : start + _CHUNK]
        conn.execute(statement, [{name: row.get(name) for name in names} for row in chunk])

"""Row rules of the AOU participant source, in Python: the single source of truth.

The SQL views in ``include/sql/aou/<dialect>/`` apply these same rules server-side (that is
where the seed applied them); this module states them once more in Python for whatever the
DAG must do outside SQL (Pardot matching, checks, the synthetic data) and so that tests can
prove the views and the Python agree row for row.

Rules (the seed's, with its bugs fixed and noted):

* text: ``NULL`` becomes ``''``, leading and trailing spaces (only spaces, as SQL ``TRIM``)
  are removed. This covers the seed's "REDCap NULLs become ''".
* ``MailingState``: the code is trimmed and upper-cased, then looked up in
  :data:`STATE_NAMES`; an unknown code gives ``''``. SQL Server compared case-insensitively,
  so upper-casing first keeps its results on case-sensitive SQLite and PostgreSQL. The
  seed's CASE lacked ``AK`` and padded five names with a trailing space; both are fixed.
* dates: ``yyyy-mm-dd``; ``NULL`` and the HealthPro "no date" sentinel ``1900-01-01`` give ``''``.
* ``Email``: trimmed and lower-cased (:func:`normalise_email`).
* ``Phone``: North American numbers only, as Salesforce's US locale shows them,
  ``(212) 555-0100``; anything else gives ``''`` (:func:`normalise_phone`).
* flags (HealthPro statuses): ``1`` when the source says 1, else ``0``.
* REDCap's yes/no "technical assistance required": ``'1'``/``'0'``, ``''`` when unanswered.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime
from types import MappingProxyType
from typing import Any, Final, Literal

__all__ = [
    "CONTACT_FIELDS",
    "DATE_SENTINEL",
    "JOURNEY_COLUMNS",
    "JOURNEY_FIELDS",
    "PHONE_SEPARATORS",
    "STATE_NAMES",
    "contact_from_base",
    "flag",
    "format_date",
    "journey_from_base",
    "normalise_email",
    "normalise_phone",
    "normalise_text",
    "redcap_flag",
    "state_name",
]

DATE_SENTINEL: Final = "1900-01-01"
"""HealthPro's "no date": exported instead of an empty cell."""

PHONE_SEPARATORS: Final = " -().+/"
"""Characters dropped from a phone before it is checked; anything else but digits voids it."""

_DIGITS: Final = frozenset("0123456789")

# USPS codes: 50 states, DC, the five inhabited territories, the three freely associated
# states and the three armed-forces "states". Pairs, not a dict literal, so that a code
# listed twice fails at import instead of silently keeping the last entry.
_STATE_PAIRS: tuple[tuple[str, str], ...] = (
    ("AL", "ALABAMA"),
    ("AK", "ALASKA"),
    ("AZ", "ARIZONA"),
    ("AR", "ARKANSAS"),
    ("CA", "CALIFORNIA"),
    ("CO", "COLORADO"),
    ("CT", "CONNECTICUT"),
    ("DE", "DELAWARE"),
    ("FL", "FLORIDA"),
    ("GA", "GEORGIA"),
    ("HI", "HAWAII"),
    ("ID", "IDAHO"),
    ("IL", "ILLINOIS"),
    ("IN", "INDIANA"),
    ("IA", "IOWA"),
    ("KS", "KANSAS"),
    ("KY", "KENTUCKY"),
    ("LA", "LOUISIANA"),
    ("ME", "MAINE"),
    ("MD", "MARYLAND"),
    ("MA", "MASSACHUSETTS"),
    ("MI", "MICHIGAN"),
    ("MN", "MINNESOTA"),
    ("MS", "MISSISSIPPI"),
    ("MO", "MISSOURI"),
    ("MT", "MONTANA"),
    ("NE", "NEBRASKA"),
    ("NV", "NEVADA"),
    ("NH", "NEW HAMPSHIRE"),
    ("NJ", "NEW JERSEY"),
    ("NM", "NEW MEXICO"),
    ("NY", "NEW YORK"),
    ("NC", "NORTH CAROLINA"),
    ("ND", "NORTH DAKOTA"),
    ("OH", "OHIO"),
    ("OK", "OKLAHOMA"),
    ("OR", "OREGON"),
    ("PA", "PENNSYLVANIA"),
    ("RI", "RHODE ISLAND"),
    ("SC", "SOUTH CAROLINA"),
    ("SD", "SOUTH DAKOTA"),
    ("TN", "TENNESSEE"),
    ("TX", "TEXAS"),
    ("UT", "UTAH"),
    ("VT", "VERMONT"),
    ("VA", "VIRGINIA"),
    ("WA", "WASHINGTON"),
    ("WV", "WEST VIRGINIA"),
    ("WI", "WISCONSIN"),
    ("WY", "WYOMING"),
    ("DC", "DISTRICT OF COLUMBIA"),
    ("AS", "AMERICAN SAMOA"),
    ("GU", "GUAM"),
    ("MP", "NORTHERN MARIANA ISLANDS"),
    ("PR", "PUERTO RICO"),
    ("VI", "VIRGIN ISLANDS"),
    ("FM", "FEDERATED STATES OF MICRONESIA"),
    ("MH", "MARSHALL ISLANDS"),
    ("PW", "PALAU"),
    ("AA", "ARMED FORCES AMERICAS"),
    ("AE", "ARMED FORCES EUROPE"),
    ("AP", "ARMED FORCES PACIFIC"),
)


def _build_states() -> Mapping[str, str]:
    table: dict[str, str] = {}
    for code, name in _STATE_PAIRS:
        if code in table:
            raise ValueError(f"state code {code} listed twice")
        table[code] = name
    return MappingProxyType(table)


STATE_NAMES: Final[Mapping[str, str]] = _build_states()
"""USPS state code -> full upper-case name (62 codes)."""


# --- Salesforce field lists -------------------------------------------------------------

CONTACT_FIELDS: Final[tuple[str, ...]] = (
    "HP_PMI_ID__c",
    "LastName",
    "FirstName",
    "Birthdate",
    "MailingStreet",
    "MailingCity",
    "AccountId",
    "MailingState",
    "MailingPostalCode",
    "Email",
    "Phone",
    "HP_Sex__c",
    "HP_Gender_Identity__c",
    "HP_Race_Ethnicity__c",
    "CH_All_of_Us_Enroller_UNI__c",
    "CH_REDCap_Record_ID__c",
    "CH_Specify_Health_Care_Provider__c",
    "CH_Other_details__c",
    "CH_Technical_Assistance_Required__c",
    "CH_How_did_contact_learn_about_AoU__c",
    "CH_Other_technical_assistance_details__c",
    "CH_Specify_clinical_outreach__c",
    "HP_Language__c",
    "DV_Enrollment__c",
)
"""Contact fields the source yields: the seed's 25 minus ``Id`` (``OwnerId`` is the push's)."""

Kind = Literal["text", "flag", "date"]

JOURNEY_COLUMNS: Final[tuple[tuple[str, str, Kind], ...]] = (
    ("HP_Participant_Status__c", "Participant Status", "text"),
    ("HP_General_Consent_Status__c", "General Consent Status", "flag"),
    ("HP_General_Consent_Date__c", "General Consent Date", "date"),
    ("HP_EHR_Consent_Status__c", "EHR Consent Status", "flag"),
    ("HP_EHR_Consent_Date__c", "EHR Consent Date", "date"),
    ("HP_gROR_Consent_Status__c", "gROR Consent Status", "flag"),
    ("HP_gROR_Consent_Date__c", "gROR Consent Date", "date"),
    ("HP_Withdrawal_Date__c", "Withdrawal Date", "date"),
    ("HP_Withdrawal_Status__c", "Withdrawal Status", "flag"),
    ("HP_PPI_Basics_Date__c", "Basics PPI Survey Completion Date", "date"),
    ("HP_PPI_Overall_Health_Date__c", "Health PPI Survey Completion Date", "date"),
    ("HP_PPI_Lifestyle_Date__c", "Lifestyle PPI Survey Completion Date", "date"),
    ("HP_PPI_Medical_History_Date__c", "Hist PPI Survey Completion Date", "date"),
    ("HP_PPI_Health_Care_Access_Date__c", "Access PPI Survey Completion Date", "date"),
    ("HP_PPI_Family_Health_Date__c", "Family PPI Survey Completion Date", "date"),
    (
        "HP_PPI_Personal_Medical_History_Date__c",
        "Personal Medical History PPI Survey Completion Date",
        "date",
    ),
    ("HP_PPI_COPE_May_Date__c", "COPE May PPI Survey Completion Date", "date"),
    ("HP_PPI_COPE_June_Date__c", "COPE June PPI Survey Completion Date", "date"),
    ("HP_PPI_COPE_July_Date__c", "COPE July PPI Survey Completion Date", "date"),
    ("HP_Physical_Measurements_Completion_Date__c", "Physical Measurements Completion Date", "date"),
    ("HP_Samples_for_DNA_Received__c", "Samples for DNA Received", "flag"),
    ("HP_1SST8_Collection_Date__c", "8 mL SST Collection Date", "date"),
    ("HP_1PST8_Collection_Date__c", "8 mL PST Collection Date", "date"),
    ("HP_1HEP4_Collection_Date__c", "4 mL Na-Hep Collection Date", "date"),
    ("HP_1ED04_Collection_Date__c", "4 mL EDTA Collection Date", "date"),
    ("HP_1ED10_Collection_Date__c", "1st 10 mL EDTA Collection Date", "date"),
    ("HP_2ED10_Collection_Date__c", "2nd 10 mL EDTA Collection Date", "date"),
    ("HP_1UR10_Collection_Date__c", "Urine 10 mL Collection Date", "date"),
    ("HP_1SAL_Collection_Date__c", "Saliva Collection Date", "date"),
)
"""Opportunity ("journey") field, HealthPro export column, rule.

Field names are those of the org's Opportunity (``sandbox/salesforce/schema/Opportunity.yaml``);
biospecimens use HealthPro's sample codes (1SST8 = the 8 mL SST tube, ...). HealthPro also
exports 2 mL EDTA, cell-free DNA, PAXgene RNA and 90 mL urine dates, which the seed synced
but the Opportunity has no field for: they stay in the source and are not extracted.
"""

JOURNEY_FIELDS: Final[tuple[str, ...]] = ("HP_PMI_ID__c", *(field for field, _, _ in JOURNEY_COLUMNS))
"""Journey fields the source yields, the key first."""


# --- value rules ------------------------------------------------------------------------


def normalise_text(raw: Any) -> str:
    """Return ``raw`` as text with surrounding spaces removed; ``None`` gives ``''``."""
    if raw is None:
        return ""
    return str(raw).strip(" ")


def normalise_email(raw: Any) -> str:
    """Return the email trimmed and lower-cased; ``None`` gives ``''``.

    SQLite's ``lower()`` folds ASCII letters only; PostgreSQL, SQL Server and Python fold
    every letter, so a non-ASCII address may differ between the SQLite demo and production.
    """
    return normalise_text(raw).lower()


def normalise_phone(raw: Any) -> str:
    """Return a North American number as ``(NPA) NXX-XXXX``, else ``''``.

    The separators in :data:`PHONE_SEPARATORS` are dropped; what is left must be digits
    only, ten of them, or eleven starting with the country code 1; the area code and the
    exchange may not start with 0 or 1 (NANP). Extensions, letters and short numbers give
    ``''``. The result normalises to itself, so the rule can be applied on both sides of
    a comparison. The SQL views apply exactly this rule.
    """
    if raw is None:
        return ""
    digits = str(raw)
    for separator in PHONE_SEPARATORS:
        digits = digits.replace(separator, "")
    if len(digits) == 11 and digits[0] == "1":
        digits = digits[1:]
    if len(digits) != 10 or not _DIGITS.issuperset(digits) or digits[0] in "01" or digits[3] in "01":
        return ""
    return f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"


def state_name(raw: Any) -> str:
    """Return the full upper-case name of a USPS state code; unknown or empty gives ``''``."""
    return STATE_NAMES.get(normalise_text(raw).upper(), "")


def format_date(value: Any) -> str:
    """Return a date as ``yyyy-mm-dd``; ``None`` and ``1900-01-01`` give ``''``.

    Accepts ``date``/``datetime`` objects and ISO text (SQLite stores dates as text).
    """
    if value is None:
        return ""
    if isinstance(value, datetime):
        text = value.date().isoformat()
    elif isinstance(value, date):
        text = value.isoformat()
    else:
        text = str(value).strip(" ")[:10]
    return "" if text == DATE_SENTINEL else text


def flag(value: Any) -> int:
    """Return 1 when the source flag is 1, else 0 (``NULL`` and anything else)."""
    return 1 if value == 1 else 0


def redcap_flag(value: Any) -> str:
    """Return a REDCap yes/no answer as ``'1'``/``'0'``, ``''`` when unanswered."""
    if value is None:
        return ""
    return "1" if value == 1 else "0"


# --- whole rows -------------------------------------------------------------------------


def contact_from_base(row: Mapping[str, Any], *, account_id: str) -> dict[str, Any]:
    """Return the Contact row the source query yields for one ``vw_reporting_base`` row.

    Keys are :data:`CONTACT_FIELDS` plus ``withdrawn`` (1/0); the reference implementation
    the SQL is tested against.
    """
    hp = _suffixed(row, "_HP")
    rc = _suffixed(row, "_RC")
    record_id = rc("record_id")
    return {
        "HP_PMI_ID__c": hp("PMI ID"),
        "LastName": normalise_text(hp("Last Name")),
        "FirstName": normalise_text(hp("First Name")),
        "Birthdate": format_date(hp("Date of Birth")),
        "MailingStreet": normalise_text(hp("Street Address")),
        "MailingCity": normalise_text(hp("City")),
        "AccountId": account_id,
        "MailingState": state_name(hp("State")),
        "MailingPostalCode": normalise_text(hp("ZIP")),
        "Email": normalise_email(hp("Email")),
        "Phone": normalise_phone(hp("Phone")),
        "HP_Sex__c": normalise_text(hp("Sex")),
        "HP_Gender_Identity__c": normalise_text(hp("Gender Identity")),
        "HP_Race_Ethnicity__c": normalise_text(hp("Race/Ethnicity")),
        "CH_All_of_Us_Enroller_UNI__c": normalise_text(rc("aou_enroller")),
        "CH_REDCap_Record_ID__c": "" if record_id is None else str(record_id),
        "CH_Specify_Health_Care_Provider__c": normalise_text(rc("spec_provider")),
        "CH_Other_details__c": normalise_text(rc("other_details")),
        "CH_Technical_Assistance_Required__c": redcap_flag(rc("tech_asst")),
        "CH_How_did_contact_learn_about_AoU__c": normalise_text(rc("learn_aou")),
        "CH_Other_technical_assistance_details__c": normalise_text(rc("tech_asst_other")),
        "CH_Specify_clinical_outreach__c": normalise_text(rc("clinical_outreach_name")),
        "HP_Language__c": normalise_text(hp("Language")),
        "DV_Enrollment__c": flag(hp("DV Enrollment")),
        "withdrawn": flag(hp("Withdrawal Status")),
    }


def journey_from_base(row: Mapping[str, Any]) -> dict[str, Any]:
    """Return the journey row the source query yields for one ``vw_reporting_base`` row."""
    hp = _suffixed(row, "_HP")
    rules = {"text": normalise_text, "flag": flag, "date": format_date}
    journey: dict[str, Any] = {"HP_PMI_ID__c": hp("PMI ID")}
    for field, column, kind in JOURNEY_COLUMNS:
        journey[field] = rules[kind](hp(column))
    return journey


def _suffixed(row: Mapping[str, Any], suffix: str) -> Callable[[str], Any]:
    return lambda column: row[f"{column}{suffix}"]

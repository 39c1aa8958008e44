"""Synthetic GP Connect reports for tests, the demo and the benchmark (no real person in them).

Phones come in the shapes real reports hold: local (``082 000 0123``), E.164 and digits
stored as a number; dates as Excel dates; ``patients_tested_positive`` as 1, ``"1"`` or 0.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from openpyxl import Workbook

__all__ = [
    "FIELDS",
    "HEADERS",
    "SHEET",
    "mutate_rows",
    "patient_rows",
    "rapidpro_seed",
    "write_csv",
    "write_xlsx",
]

SHEET = "GP Connect daily report"
HEADERS = (
    "telephone_no",
    "patients_tested_positive",
    "first_name",
    "surname",
    "date_of_test",
    "age",
    "facility",
)
#: Contact fields the reports need in RapidPro: (key, label, value_type), incl. has_whatsapp.
FIELDS = (
    ("patients_tested_positive", "Patients tested positive", "numeric"),
    ("first_name", "First name", "text"),
    ("surname", "Surname", "text"),
    ("date_of_test", "Date of test", "datetime"),
    ("age", "Age", "numeric"),
    ("facility", "Facility", "text"),
    ("has_whatsapp", "Has WhatsApp", "text"),
)
_FIRST = ("Thandi", "Sipho", "Lerato", "Johan", "Aisha", "Pieter", "Nomsa", "Kagiso", "Anele", "Ruan")
_LAST = ("Nkosi", "Dlamini", "van der Merwe", "Naidoo", "Botha", "Mokoena", "Khumalo", "Smith", "Pillay")
_FACILITIES = ("Khayelitsha CDC", "Soweto Clinic", "Durban Central", "Polokwane Hospital", "Mitchells Plain")


def phone(index: int, style: str = "local") -> Any:
    """A valid South African mobile number for ``index`` in one of the report's shapes."""
    prefix = ("82", "83", "72", "73", "84")[index % 5]
    national = f"{prefix}{index:07d}"
    if style == "e164":
        return f"+27{national}"
    if style == "number":
        return int(f"27{national}")
    return f"0{national[:2]} {national[2:5]} {national[5:]}"


def patient_rows(
    count: int, *, seed: int = 1, positive_ratio: float = 0.9, start: int = 0
) -> list[dict[str, Any]]:
    """``count`` report rows keyed by :data:`HEADERS`; the phone of row i is :func:`phone` (start + i)."""
    rng = random.Random(seed)  # noqa: S311 - synthetic data, not security
    rows = []
    for i in range(start, start + count):
        positive = rng.random() < positive_ratio
        rows.append(
            {
                "telephone_no": phone(i, ("local", "e164", "number")[i % 3]),
                "patients_tested_positive": (1 if i % 2 else "1") if positive else 0,
                "first_name": rng.choice(_FIRST),
                "surname": rng.choice(_LAST),
                "date_of_test": date(2026, 11, 1) + timedelta(days=rng.randrange(20)),
                "age": rng.randrange(18, 90),
                "facility": rng.choice(_FACILITIES),
            }
        )
    return rows


def mutate_rows(
    rows: Sequence[Mapping[str, Any]], *, fraction: float, seed: int = 2
) -> tuple[list[dict[str, Any]], set[int]]:
    """A copy of ``rows`` where ``fraction`` of them changed facility or age; returns the changed indexes."""
    rng = random.Random(seed)  # noqa: S311 - synthetic data, not security
    out = [dict(row) for row in rows]
    changed = set(rng.sample(range(len(out)), max(1, round(len(out) * fraction)))) if out else set()
    for index in changed:
        out[index]["age"] = int(out[index]["age"]) + 1
        out[index]["facility"] = rng.choice([f for f in _FACILITIES if f != out[index]["facility"]])
    return out, changed


def write_xlsx(
    path: Path, rows: Iterable[Mapping[str, Any]], *, headers: Sequence[str] = HEADERS, sheet: str = SHEET
) -> Path:
    """Write a report workbook (write-only mode: constant memory for large files)."""
    book = Workbook(write_only=True)
    worksheet = book.create_sheet(sheet)
    worksheet.append(list(headers))
    for row in rows:
        worksheet.append([row.get(header) for header in headers])
    book.save(path)
    return path


def write_csv(path: Path, rows: Iterable[Mapping[str, Any]], *, headers: Sequence[str] = HEADERS) -> Path:
    """Write a report as CSV (the form the original moved to in 2019)."""
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(headers)
        for row in rows:
            writer.writerow(["" if row.get(h) is None else row.get(h) for h in headers])
    return path


def rapidpro_seed(
    new_contact_flow: str, contact_update_flow: str, *, org: str = "GP Connect"
) -> dict[str, Any]:
    """The RapidPro emulator seed: the report's contact fields and the org's two flows."""
    return {
        "org": org,
        "fields": [{"key": key, "label": label, "value_type": kind} for key, label, kind in FIELDS],
        "flows": [
            {"uuid": new_contact_flow, "name": "GP Connect new contact", "sets_fields_from_params": True},
            {
                "uuid": contact_update_flow,
                "name": "GP Connect contact update",
                "sets_fields_from_params": True,
            },
        ],
    }

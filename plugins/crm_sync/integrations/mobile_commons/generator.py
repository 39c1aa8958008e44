"""Synthetic Salesforce Contacts for the demo and the benchmark (deterministic for a seed).

Phones are in exchange 555 of ten large area codes (valid for libphonenumber, reserved for
fiction and directory services). Shares: about 3% without a mobile phone, 1% sharing a
phone with another record, 10% not opted in, 5% in the ``Volunteers`` group.
"""

from __future__ import annotations

import random
from typing import Any

FIRST = ("Ann", "Ben", "Cy", "Dee", "Eli", "Fay", "Gus", "Hal", "Ivy", "Jo", "Kay", "Lu", "", "Max")
LAST = ("Lee", "Ng", "Diaz", "Okafor", "Smith", "Khan", "Rossi", "Berg")
CITIES = ("New York", "Boston", "Chicago", "Denver", "Austin")


AREAS = (212, 312, 415, 617, 713, 202, 305, 404, 503, 206)


def phone_for(index: int) -> str:
    """A US number in exchange 555 for the ``index``-th contact (100,000 before repeating)."""
    return f"({AREAS[(index // 10_000) % len(AREAS)]}) 555-{index % 10_000:04d}"


def contacts(count: int, *, seed: int = 3) -> list[dict[str, Any]]:
    """``count`` Contacts ready for the Salesforce emulator's seed API."""
    rng = random.Random(seed)  # noqa: S311 - synthetic sample data, not security
    rows = []
    for index in range(count):
        first = rng.choice(FIRST) or None
        draw = rng.random()
        phone: str | None = phone_for(index)
        if draw < 0.03:
            phone = None
        elif draw < 0.04 and index:
            phone = phone_for(index - 1)
        rows.append(
            {
                "FirstName": first,
                "LastName": rng.choice(LAST),
                "MobilePhone": phone,
                "Email": f"contact{index}@example.org" if rng.random() > 0.05 else None,
                "MailingStreet": f"{index} Main St",
                "MailingCity": rng.choice(CITIES),
                "Mobile_Subscriber__c": rng.random() > 0.10,
                "Mobile_Commons_Group__c": "Volunteers" if rng.random() < 0.05 else None,
            }
        )
    return rows

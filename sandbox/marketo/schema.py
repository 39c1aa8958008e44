"""Field definitions of leads, companies, opportunities and roles, and value checks by data type."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sandbox.marketo.errors import RecordError

DATA_TYPES = (
    "string",
    "text",
    "email",
    "phone",
    "url",
    "integer",
    "float",
    "currency",
    "boolean",
    "date",
    "datetime",
    "reference",
)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class FieldDef:
    """One field: REST name, data type, display name, length, read-only, searchable."""

    name: str
    data_type: str
    display_name: str = ""
    length: int | None = None
    read_only: bool = False
    searchable: bool = False
    field_id: int = 0

    @property
    def label(self) -> str:
        """The display name (derived from the REST name when not given)."""
        return self.display_name or re.sub(r"(?<!^)(?=[A-Z])", " ", self.name).title()


def coerce(spec: FieldDef, value: Any) -> Any:
    """Validate and normalise ``value`` for ``spec`` as Marketo stores it.

    Raises:
        RecordError: 1001 for a type mismatch (the message names the type, as Marketo's does),
            1003 for an invalid email or a string over the field's length.
    """
    if value is None or value == "":
        return None
    kind = spec.data_type
    mismatch = RecordError("1001", f"Invalid value '{value}'. Required of type '{kind}'")
    if kind == "integer":
        if isinstance(value, bool):
            raise mismatch
        if isinstance(value, int):
            return value
        if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
            return int(value)
        raise mismatch
    if kind in ("float", "currency"):
        if isinstance(value, bool):
            raise mismatch
        try:
            return float(value)
        except (TypeError, ValueError):
            raise mismatch from None
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if str(value).strip().lower() in ("true", "1", "yes"):
            return True
        if str(value).strip().lower() in ("false", "0", "no"):
            return False
        raise mismatch
    if kind == "date":
        try:
            return date.fromisoformat(str(value)[:10]).isoformat()
        except ValueError:
            raise mismatch from None
    if kind == "datetime":
        return format_datetime(parse_datetime(value, mismatch))
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise mismatch
    text = str(value)
    if kind == "email" and not _EMAIL.match(text):
        raise RecordError("1003", f"Invalid email address for field '{spec.name}'")
    if spec.length is not None and len(text) > spec.length:
        raise RecordError("1003", f"Value for field '{spec.name}' exceeds max length {spec.length}")
    return text


def parse_datetime(value: Any, error: Exception | None = None) -> datetime:
    """An aware datetime from ISO 8601 (``Z``, ``+0000`` and ``+00:00`` offsets, or a date)."""
    text = str(value).strip()
    if re.search(r"[+-]\d{4}$", text):
        text = f"{text[:-2]}:{text[-2:]}"
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise (error or ValueError(f"not an ISO 8601 datetime: {value!r}")) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def format_datetime(moment: datetime) -> str:
    """``2026-11-25T14:05:12Z`` as Marketo renders datetimes."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _fields(*specs: tuple[Any, ...]) -> tuple[FieldDef, ...]:
    return tuple(
        FieldDef(
            name=s[0],
            data_type=s[1],
            length=s[2] if len(s) > 2 else None,
            read_only="ro" in s[3:],
            searchable="search" in s[3:],
        )
        for s in specs
    )


# Standard lead fields the sync reads or writes, plus the original's custom fields
# (pipedriveId, toDelete, leadCountry; seed-notes section 001). More can be seeded.
LEAD_FIELDS = _fields(
    ("id", "integer", None, "ro", "search"),
    ("email", "email", 255, "search"),
    ("firstName", "string", 255),
    ("lastName", "string", 255),
    ("title", "string", 255),
    ("company", "string", 255),
    ("phone", "phone", 255),
    ("mobilePhone", "phone", 255),
    ("website", "url", 255),
    ("address", "text"),
    ("city", "string", 255),
    ("state", "string", 255),
    ("postalCode", "string", 255),
    ("country", "string", 255),
    ("inferredCountry", "string", 255, "ro"),
    ("leadSource", "string", 255),
    ("leadStatus", "string", 255),
    ("leadScore", "integer"),
    ("unsubscribed", "boolean"),
    ("externalCompanyId", "string", 100, "search"),
    ("leadOwnerFirstName", "string", 255, "ro"),
    ("leadOwnerLastName", "string", 255, "ro"),
    ("leadOwnerEmail", "email", 255, "ro"),
    ("lastInterestingMomentDesc", "string", 255),
    ("lastInterestingMomentDate", "datetime"),
    ("createdAt", "datetime", None, "ro"),
    ("updatedAt", "datetime", None, "ro"),
    ("pipedriveId", "integer", None, "search"),
    ("toDelete", "boolean"),
    ("leadCountry", "string", 255),
)
LEAD_DEFAULT_FIELDS = ("id", "email", "updatedAt", "createdAt", "firstName", "lastName")
LEAD_SYSTEM_FIELDS = ("id", "createdAt", "updatedAt")


@dataclass(frozen=True)
class ObjectType:
    """A Marketo object with dedupe fields: companies, opportunities, opportunity roles."""

    path: str
    name: str
    id_field: str
    dedupe_fields: tuple[str, ...]
    searchable: tuple[tuple[str, ...], ...]
    fields: tuple[FieldDef, ...]
    required: tuple[str, ...] = ()
    guid_ids: bool = True
    by_name: dict[str, FieldDef] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {f.name: f for f in self.fields})

    def describe(self) -> dict[str, Any]:
        """The body of ``describe.json``."""
        return {
            "name": self.name,
            "displayName": self.name[0].upper() + re.sub(r"(?<!^)(?=[A-Z])", " ", self.name)[1:],
            "idField": self.id_field,
            "dedupeFields": list(self.dedupe_fields),
            "searchableFields": [list(group) for group in self.searchable],
            "fields": [
                {
                    "name": f.name,
                    "displayName": f.label,
                    "dataType": f.data_type,
                    **({"length": f.length} if f.length else {}),
                    "updateable": not f.read_only,
                }
                for f in self.fields
            ],
        }


COMPANY = ObjectType(
    path="companies",
    name="Company",
    id_field="id",
    dedupe_fields=("externalCompanyId",),
    searchable=(("externalCompanyId",), ("id",), ("company",)),
    fields=_fields(
        ("id", "integer", None, "ro"),
        ("externalCompanyId", "string", 100, "ro"),
        ("company", "string", 255),
        ("website", "url", 255),
        ("mainPhone", "phone", 255),
        ("industry", "string", 255),
        ("annualRevenue", "currency"),
        ("numberOfEmployees", "integer"),
        ("billingStreet", "string", 255),
        ("billingCity", "string", 255),
        ("billingState", "string", 255),
        ("billingPostalCode", "string", 255),
        ("billingCountry", "string", 255),
        ("createdAt", "datetime", None, "ro"),
        ("updatedAt", "datetime", None, "ro"),
    ),
    guid_ids=False,
)
OPPORTUNITY = ObjectType(
    path="opportunities",
    name="opportunity",
    id_field="marketoGUID",
    dedupe_fields=("externalOpportunityId",),
    searchable=(("externalOpportunityId",), ("marketoGUID",)),
    fields=_fields(
        ("marketoGUID", "string", 36, "ro"),
        ("externalOpportunityId", "string", 50, "ro"),
        ("name", "string", 255),
        ("description", "text"),
        ("type", "string", 255),
        ("stage", "string", 255),
        ("amount", "currency"),
        ("expectedRevenue", "currency"),
        ("probability", "integer"),
        ("closeDate", "date"),
        ("isClosed", "boolean"),
        ("isWon", "boolean"),
        ("fiscalQuarter", "integer"),
        ("fiscalYear", "integer"),
        ("leadSource", "string", 255),
        ("nextStep", "string", 255),
        ("externalCompanyId", "string", 100),
        ("externalSalesPersonId", "string", 100),
        ("externalCreatedDate", "datetime"),
        ("createdAt", "datetime", None, "ro"),
        ("updatedAt", "datetime", None, "ro"),
    ),
    required=("name",),
)
OPPORTUNITY_ROLE = ObjectType(
    path="opportunities/roles",
    name="opportunityRole",
    id_field="marketoGUID",
    dedupe_fields=("externalOpportunityId", "leadId", "role"),
    searchable=(
        ("externalOpportunityId", "leadId", "role"),
        ("marketoGUID",),
        ("leadId",),
        ("externalOpportunityId",),
    ),
    fields=_fields(
        ("marketoGUID", "string", 36, "ro"),
        ("externalOpportunityId", "string", 50, "ro"),
        ("leadId", "integer", None, "ro"),
        ("role", "string", 50, "ro"),
        ("isPrimary", "boolean"),
        ("externalCreatedDate", "datetime"),
        ("createdAt", "datetime", None, "ro"),
        ("updatedAt", "datetime", None, "ro"),
    ),
)
OBJECT_TYPES = {t.path: t for t in (COMPANY, OPPORTUNITY, OPPORTUNITY_ROLE)}

"""The matching cascades of seed 001: which record on the other side is this one?

Each cascade tries its steps in order and stops at the first that finds exactly one record;
a step that finds several is ambiguous and passes to the next one (the original required
"exactly one hit" for names; an id-based step finding two records is a data problem the
next, narrower step may still settle). The :class:`Match` says which step matched, so the
ledger and the tests can tell a cross-id match from a name match.

- Marketo lead -> Pipedrive person: ``lead.pipedriveId``, then the person's ``marketoid``.
- Pipedrive person -> Marketo lead: ``person.marketoid``, then the lead's ``pipedriveId``.
- lead's company -> Pipedrive organization: ``marketoid``, then a unique name, then
  ``email_domain`` (one hit).
- Pipedrive organization -> Marketo company: the org's ``marketoid`` (the company id), then
  ``externalCompanyId = pd-organization-<id>``, then the company name (one hit).
- Pipedrive deal -> Marketo opportunity: ``externalOpportunityId = pd-deal-<id>``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from crm_sync.hooks.marketo import MarketoHook
from crm_sync.hooks.pipedrive import PipedriveHook, PipedriveRecord
from crm_sync.sync.adapters import is_blank

__all__ = [
    "COMPANY_PREFIX",
    "DEAL_PREFIX",
    "Match",
    "Matcher",
]

COMPANY_PREFIX = "pd-organization-"
DEAL_PREFIX = "pd-deal-"
LEAD_FIELDS = ("id", "email", "firstName", "lastName", "pipedriveId")
T = TypeVar("T")


@dataclass(frozen=True)
class Match(Generic[T]):
    """The record found (None: no step matched) and the step that found it."""

    record: T | None
    step: str | None = None

    @property
    def found(self) -> bool:
        """Whether a step matched."""
        return self.record is not None


def _as_id(value: Any) -> int | None:
    """An id from text or a number; None when blank or not a whole number (a typo in a CRM)."""
    if is_blank(value) or isinstance(value, bool):
        return None
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    return int(number) if number.is_integer() and number > 0 else None


def _one(found: Sequence[T]) -> T | None:
    return found[0] if len(found) == 1 else None


class Matcher:
    """Runs the cascades against the two APIs (reads only; writes are the sync's).

    Args:
        marketo: the Marketo hook.
        pipedrive: the Pipedrive hook.
        lead_fields: lead fields to read with a matched lead (the mapping's targets).
        company_fields: company fields to read with a matched company.
        opportunity_fields: opportunity fields to read with a matched opportunity.
    """

    def __init__(
        self,
        marketo: MarketoHook,
        pipedrive: PipedriveHook,
        *,
        lead_fields: Sequence[str] = LEAD_FIELDS,
        company_fields: Sequence[str] = (),
        opportunity_fields: Sequence[str] = (),
    ) -> None:
        self.marketo = marketo
        self.pipedrive = pipedrive
        self.lead_fields = list(dict.fromkeys([*LEAD_FIELDS, *lead_fields]))
        self.company_fields = list(dict.fromkeys(["id", "externalCompanyId", "company", *company_fields]))
        self.opportunity_fields = list(
            dict.fromkeys(["marketoGUID", "externalOpportunityId", *opportunity_fields])
        )

    # ---- persons and leads ------------------------------------------------------------------

    def person_for_lead(self, lead: Mapping[str, Any]) -> Match[PipedriveRecord]:
        """The Pipedrive person of a Marketo lead."""
        person_id = _as_id(lead.get("pipedriveId"))
        if person_id is not None:
            person = self.pipedrive.get("persons", person_id)
            if person is not None:
                return Match(person, "pipedriveId")
        lead_id = _as_id(lead.get("id"))
        if lead_id is not None:
            person = _one(self.pipedrive.find_by_field("persons", "marketoid", str(lead_id)))
            if person is not None:
                return Match(person, "marketoid")
        return Match(None)

    def lead_for_person(self, person: Mapping[str, Any]) -> Match[dict[str, Any]]:
        """The Marketo lead of a flattened Pipedrive person (``id``, ``marketoid``)."""
        person_id = _as_id(person.get("id"))
        return self.leads_for_persons([person]).get(person_id or 0, Match(None))

    def leads_for_persons(self, persons: Sequence[Mapping[str, Any]]) -> dict[int, Match[dict[str, Any]]]:
        """The Marketo leads of many flattened persons, by person id: two queries per 300 at most.

        First every ``marketoid`` (a lead id) in one query; the persons left, by the leads'
        ``pipedriveId`` (exactly one lead must carry it).
        """
        matches: dict[int, Match[dict[str, Any]]] = {}
        ids = [(_as_id(p.get("id")), p) for p in persons]
        ids = [(i, p) for i, p in ids if i is not None]

        def leads(filter_type: str) -> Fetch:
            return lambda values: self.marketo.get_leads(filter_type, values, self.lead_fields)

        _step(matches, "marketoid", {i: _as_id(p.get("marketoid")) for i, p in ids}, leads("id"), "id")
        _step(matches, "pipedriveId", {i: i for i, _ in ids}, leads("pipedriveId"), "pipedriveId")
        return matches

    # ---- organizations and companies --------------------------------------------------------

    def organization_for_company(
        self, *, name: Any, email_domain: Any = None, marketoid: Any = None
    ) -> Match[PipedriveRecord]:
        """The Pipedrive organization of a Marketo company (or a lead's company)."""
        company_id = _as_id(marketoid)
        if company_id is not None:
            org = _one(self.pipedrive.find_by_field("organizations", "marketoid", str(company_id)))
            if org is not None:
                return Match(org, "marketoid")
        if not is_blank(name):
            org = _one(self.pipedrive.find_by_field("organizations", "name", str(name).strip()))
            if org is not None:
                return Match(org, "name")
        if not is_blank(email_domain):
            org = _one(self.pipedrive.find_by_field("organizations", "email_domain", str(email_domain)))
            if org is not None:
                return Match(org, "email_domain")
        return Match(None)

    def company_for_organization(self, org: Mapping[str, Any]) -> Match[dict[str, Any]]:
        """The Marketo company of a flattened Pipedrive organization (``id``, ``marketoid``, ``name``)."""
        return self.companies_for_organizations([org]).get(int(org["id"]), Match(None))

    def companies_for_organizations(
        self, orgs: Sequence[Mapping[str, Any]]
    ) -> dict[int, Match[dict[str, Any]]]:
        """The Marketo companies of many flattened organizations, by org id: three queries per 300 at most.

        The org's ``marketoid`` (the company id), then ``externalCompanyId =
        pd-organization-<id>``, then the company name (exactly one company must have it).
        """
        matches: dict[int, Match[dict[str, Any]]] = {}
        by_id = {int(o["id"]): o for o in orgs}

        def companies(filter_type: str) -> Fetch:
            return lambda values: self.marketo.query_objects(
                "companies", filter_type, values, self.company_fields
            )

        marketoids = {i: _as_id(o.get("marketoid")) for i, o in by_id.items()}
        _step(matches, "marketoid", marketoids, companies("id"), "id")
        external = {i: f"{COMPANY_PREFIX}{i}" for i in by_id}
        _step(matches, "externalCompanyId", external, companies("externalCompanyId"), "externalCompanyId")
        names = {i: "" if is_blank(o.get("name")) else str(o["name"]).strip() for i, o in by_id.items()}
        # filterValues is comma-separated: a name with a comma cannot be asked for as one value.
        names = {i: name for i, name in names.items() if name and "," not in name}
        _step(matches, "company", names, companies("company"), "company")
        return matches

    # ---- deals and opportunities ------------------------------------------------------------

    def opportunities_for_deals(self, deal_ids: Sequence[int]) -> dict[int, Match[dict[str, Any]]]:
        """The Marketo opportunities of many deals (``pd-deal-<id>``, one query per 300), by deal id."""

        def opportunities(values: Sequence[Any]) -> Iterable[Mapping[str, Any]]:
            return self.marketo.query_objects(
                "opportunities", "externalOpportunityId", values, self.opportunity_fields
            )

        matches: dict[int, Match[dict[str, Any]]] = {}
        wanted = {int(i): f"{DEAL_PREFIX}{int(i)}" for i in deal_ids}
        _step(matches, "externalOpportunityId", wanted, opportunities, "externalOpportunityId")
        return matches


Fetch = Callable[[Sequence[Any]], Iterable[Mapping[str, Any]]]
"""Reads the records whose filter field is one of the given values (batched by the hook)."""


def _step(
    matches: dict[int, Match[Any]],
    step: str,
    wanted: Mapping[int, Any],
    fetch: Fetch,
    field: str,
) -> None:
    """One cascade step for many records at once: one read for every value still unmatched.

    ``wanted`` maps each record's id to the value to look for (None: this step cannot match
    it); a record is matched when exactly one fetched record has that value in ``field``
    (compared as trimmed, case-folded text, as Marketo's filters compare).
    """
    todo = {owner: value for owner, value in wanted.items() if owner not in matches and value is not None}
    if not todo:
        return
    hits: dict[str, list[Mapping[str, Any]]] = {}
    for record in fetch(sorted({str(v) for v in todo.values()})):
        hits.setdefault(_text(record.get(field)), []).append(record)
    for owner, value in todo.items():
        found = _one(hits.get(_text(value), []))
        if found is not None:
            matches[owner] = Match(dict(found), step)


def _text(value: Any) -> str:
    return str(value).strip().casefold()

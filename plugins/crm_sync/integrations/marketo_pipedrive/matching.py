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

from collections.abc import Mapping, Sequence
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
        by_lead: dict[int, list[int]] = {}
        for person in persons:
            person_id, lead_id = _as_id(person.get("id")), _as_id(person.get("marketoid"))
            if person_id is not None and lead_id is not None:
                by_lead.setdefault(lead_id, []).append(person_id)
        if by_lead:
            for lead in self.marketo.get_leads("id", list(by_lead), self.lead_fields):
                for person_id in by_lead.get(int(lead["id"]), []):
                    matches[person_id] = Match(lead, "marketoid")
        rest = {i for i in (_as_id(p.get("id")) for p in persons) if i is not None and i not in matches}
        if rest:
            hits: dict[int, list[dict[str, Any]]] = {}
            for lead in self.marketo.get_leads("pipedriveId", sorted(rest), self.lead_fields):
                person_id = _as_id(lead.get("pipedriveId"))
                if person_id is not None:
                    hits.setdefault(person_id, []).append(lead)
            for person_id, leads in hits.items():
                lead = _one(leads)
                if lead is not None and person_id in rest:
                    matches[person_id] = Match(lead, "pipedriveId")
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
        company_id = _as_id(org.get("marketoid"))
        if company_id is not None:
            company = _one(self._companies("id", company_id))
            if company is not None:
                return Match(company, "marketoid")
        external = f"{COMPANY_PREFIX}{org['id']}"
        company = _one(self._companies("externalCompanyId", external))
        if company is not None:
            return Match(company, "externalCompanyId")
        name = "" if is_blank(org.get("name")) else str(org["name"]).strip()
        # filterValues is comma-separated: a name with a comma cannot be asked for as one value.
        if name and "," not in name:
            company = _one(self._companies("company", name))
            if company is not None:
                return Match(company, "company")
        return Match(None)

    def _companies(self, filter_type: str, value: Any) -> list[dict[str, Any]]:
        return list(self.marketo.query_objects("companies", filter_type, [value], self.company_fields))

    # ---- deals and opportunities ------------------------------------------------------------

    def opportunities_for_deals(self, deal_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        """The Marketo opportunities of many deals (one query per 300), by deal id.

        A deal whose external id two opportunities share is left out (no unique match).
        """
        wanted = {f"{DEAL_PREFIX}{int(i)}": int(i) for i in deal_ids}
        found: dict[int, list[dict[str, Any]]] = {}
        query = self.marketo.query_objects(
            "opportunities", "externalOpportunityId", list(wanted), self.opportunity_fields
        )
        for opportunity in query:
            deal_id = wanted.get(str(opportunity.get("externalOpportunityId")))
            if deal_id is not None:
                found.setdefault(deal_id, []).append(opportunity)
        return {deal_id: hits[0] for deal_id, hits in found.items() if len(hits) == 1}

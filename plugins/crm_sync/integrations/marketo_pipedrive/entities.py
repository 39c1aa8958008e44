"""One entity synced one way: match, map, write only what changed, write the cross-ids back.

Each operation returns a :class:`Synced`: the engine :class:`Outcome` (created = CREATE,
updated = UPDATE, skipped = UNCHANGED/SKIPPED, rejected with the record and field named) and
the values written, which the no-echo memory keeps. A field is written only when its new value
is non-empty and differs from the target's (``changed_fields``: nothing is ever blanked) and,
for a ``no_clobber`` field, only while the target's value is empty.

Cross-ids (seed 001): the lead gets ``pipedriveId``, the person ``marketoid`` (the lead id),
the organization ``marketoid`` (the company id). They are written in the same call as the
data where the API allows it, otherwise by one extra call, and only when they differ; the
leads' ``pipedriveId`` write-backs go to Marketo in batches (one call per 300 leads).

Within one run an organization is looked up once per company (name and domain): the next
lead of the same company diffs against what the first one left, with no further read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cached_property, partial
from typing import Any

from crm_sync.exceptions import QuotaExhausted, RecordRejected
from crm_sync.hooks.marketo import MarketoHook
from crm_sync.hooks.marketo_types import MAX_BATCH
from crm_sync.hooks.pipedrive import PipedriveHook, PipedriveRecord
from crm_sync.hooks.pipedrive_fields import FieldMap, snake_case
from crm_sync.integrations.marketo_pipedrive import activities, deals, organizations, persons
from crm_sync.integrations.marketo_pipedrive.mappings import MappingSet
from crm_sync.integrations.marketo_pipedrive.matching import Matcher
from crm_sync.integrations.marketo_pipedrive.memory import Conflict, RecordMemory
from crm_sync.integrations.marketo_pipedrive.records import flatten, to_body, values_of
from crm_sync.integrations.marketo_pipedrive.results import (
    Synced,
    echo,
    marketo_failure,
    moment,
    non_blank,
    ok,
    parked,
    rejected,
    unchanged,
)
from crm_sync.sync.adapters import is_blank, lookup_tables
from crm_sync.sync.mapping import FieldMapping, changed_fields
from crm_sync.sync.outbox import Outbox
from crm_sync.sync.records import Action, Outcome, Status

__all__ = ["DEFAULT_PIPELINES", "EntitySync", "Synced"]

log = logging.getLogger(__name__)

DEFAULT_PIPELINES = ("NX Subscription (New and Upsell)",)
USERS_TABLE = "pipedrive_users"


@dataclass(frozen=True)
class _PersonWritten:
    """A lead whose person is written; its pipedriveId write-back and memory wait for the batch."""

    index: int
    key: str
    lead: Mapping[str, Any]
    person: PipedriveRecord
    remember_person: bool


@dataclass
class _KnownOrganization:
    """An organization this run already matched or wrote: its id and current mapped values."""

    id: int
    values: dict[str, Any]
    keep_name: bool


class EntitySync:
    """The per-entity operations of the Marketo <-> Pipedrive sync, for one run.

    Args:
        marketo: the Marketo hook.
        pipedrive: the Pipedrive hook.
        mappings: the loaded mapping set.
        pipelines: names of the deal pipelines whose deals become opportunities.
        run_date: the run's date (an activity's due date).
        memory: the no-echo and conflict memory (None: every change is synced, no conflicts).
    """

    def __init__(
        self,
        marketo: MarketoHook,
        pipedrive: PipedriveHook,
        mappings: MappingSet,
        *,
        pipelines: Sequence[str] = DEFAULT_PIPELINES,
        run_date: date | None = None,
        memory: RecordMemory | None = None,
    ) -> None:
        self.marketo = marketo
        self.pipedrive = pipedrive
        self.mappings = mappings
        self.pipeline_names = tuple(pipelines)
        self.run_date = run_date or datetime.now(UTC).date()
        self.memory = memory
        self._organizations: dict[tuple[str, str], _KnownOrganization] = {}
        self._organization_names: dict[int, str | None] = {}
        # What a snapshot keeps of each side: every field either direction maps.
        self.person_watch = sorted(
            {snake_case(n) for n in mappings.lead_to_person.target_fields}
            | (set(mappings.person_to_lead.source_fields) - {"org_name"})
            | {"id"}
        )
        self.org_watch = sorted(
            {snake_case(n) for n in mappings.lead_to_organization.target_fields}
            | {n.split(".", 1)[0] for n in mappings.organization_to_company.source_fields}
            | {"id", "marketoid"}
        )
        lead_fields = [*mappings.person_to_lead.target_fields, *mappings.lead_to_person.source_fields]
        self.matcher = Matcher(
            marketo,
            pipedrive,
            lead_fields=[f for f in lead_fields if "." not in f],
            company_fields=mappings.organization_to_company.target_fields,
            opportunity_fields=mappings.deal_to_opportunity.target_fields,
        )

    # ---- run-time setup ---------------------------------------------------------------------

    def check(self) -> None:
        """Resolve every Pipedrive field the mappings name and the configured pipelines, before any write.

        Raises:
            ConfigurationError: a field or pipeline Pipedrive does not have (all named).
        """
        for entity, names in self.mappings.pipedrive_names().items():
            self.fields(entity).resolve(sorted(names))
        self.pipeline_ids  # noqa: B018 - resolving raises for an unknown pipeline name
        self.marketo.check_lead_fields(self.mappings.person_to_lead.target_fields, writable=True)

    def fields(self, entity: str) -> FieldMap:
        """The entity's Pipedrive fields (read once per hook)."""
        return self.pipedrive.fields(entity)

    @cached_property
    def users(self) -> dict[str, int]:
        """Active Pipedrive users by name: the owner-name lookup table."""
        return {u.name: u.id for u in self.pipedrive.users() if u.active}

    @cached_property
    def pipeline_ids(self) -> frozenset[int]:
        """Ids of the configured pipelines."""
        return frozenset(self.pipedrive.pipeline_ids(self.pipeline_names).values())

    def apply_mapping(self, mapping: FieldMapping, record: Mapping[str, Any], key: str) -> dict[str, Any]:
        """Map one record with the run's lookup tables (Pipedrive users by name) in place."""
        with lookup_tables(**{USERS_TABLE: self.users}):
            return mapping.apply(record, key=key)

    def guard(self, key: str, action: Action, work: Callable[[], Synced]) -> Synced:
        """Run one entity; bad data becomes a rejection naming record and field, the batch goes on."""
        try:
            return work()
        except RecordRejected as exc:
            log.info("marketo_pipedrive: %s rejected (%s, field %s)", key, exc.code, exc.field)
            return rejected(key, action, exc)
        except QuotaExhausted as exc:
            # The daily quota ran out on a read: park the record; the hook sends nothing more.
            return parked(key, action, exc)

    # ---- Marketo lead -> Pipedrive person (+ organization) ----------------------------------

    def lead_to_person(self, lead: Mapping[str, Any]) -> Synced:
        """Create or update the person of a lead, its organization, and write pipedriveId back."""
        return self.leads_to_persons([lead])[0]

    def leads_to_persons(self, leads: Sequence[Mapping[str, Any]]) -> list[Synced]:
        """:meth:`lead_to_person` for many leads: the pipedriveId write-backs in one call per 300.

        A write-back Marketo refuses turns that lead's outcome into a failure naming
        ``pipedriveId`` (parked on 607, failed when transient, rejected otherwise); the person
        stays written and is found by its ``marketoid`` when the lead is synced again.
        """
        results: list[Synced] = []
        for start in range(0, len(leads), MAX_BATCH):
            written: list[_PersonWritten] = []
            for lead in leads[start : start + MAX_BATCH]:
                key, index = f"lead:{lead.get('id')}", len(results)
                work = partial(self._lead_to_person, lead, key, index, written)
                results.append(self.guard(key, Action.UPDATE, work))
            self._write_back_pipedrive_ids(written, results)
        return results

    def lead_snapshot(self, lead: Mapping[str, Any]) -> dict[str, Any]:
        """The lead fields the memory keeps (both directions' fields)."""
        return {name: lead.get(name) for name in self.matcher.lead_fields}

    def person_snapshot(self, person: PipedriveRecord) -> dict[str, Any]:
        """The person fields the memory keeps (both directions' fields)."""
        flat = flatten(person, self.fields("persons"))
        return {name: flat.get(name) for name in self.person_watch}

    def _lead_to_person(
        self, lead: Mapping[str, Any], key: str, index: int, written: list[_PersonWritten]
    ) -> Synced:
        if self.memory and self.memory.is_echo("lead", lead.get("id"), lead):
            return echo(key, lead.get("pipedriveId"))
        found: list[Conflict] = []
        mapping = self.mappings.lead_to_person
        payload = self.apply_mapping(mapping, lead, key)
        org_id = self._organization_of(lead, key)
        if org_id is not None:
            payload["org_id"] = org_id
        fields = self.fields("persons")
        match = self.matcher.person_for_lead(lead)
        if match.record is None:
            sent = non_blank(payload)
            person = self.pipedrive.create("persons", to_body("persons", sent, fields), key=key)
            result = ok(key, Action.CREATE, person.id, sent, None)
        else:
            person = match.record
            current = values_of(flatten(person, fields), list(payload))
            diff = changed_fields(payload, current, no_clobber=mapping.no_clobber_fields)
            if diff and self.memory:
                diff, found = self.memory.resolve(
                    "person",
                    target_entity="person",
                    target_key=person.id,
                    diff=diff,
                    target_current=current,
                    source_side="marketo",
                    source_changed_at=moment(lead.get("updatedAt")),
                    target_changed_at=person.update_time,
                    record_key=key,
                )
            if diff:
                body = to_body("persons", diff, fields)
                person = self.pipedrive.update("persons", person.id, body, key=key)
                result = ok(key, Action.UPDATE, person.id, diff, match.step)
            else:
                result = unchanged(key, person.id, match.step)
        # A person whose own edit won a conflict keeps its old base: its edit must still read
        # as a change, and travel to the lead, when the person is synced.
        keep_base = any(c.winner == "target" for c in found)
        written.append(_PersonWritten(index, key, lead, person, remember_person=not keep_base))
        return result

    def _organization_of(self, lead: Mapping[str, Any], key: str) -> int | None:
        """The id of the lead's company as an organization (matched, updated or created), if it has one."""
        if is_blank(lead.get("company")):
            return None
        mapping = self.mappings.lead_to_organization
        payload = self.apply_mapping(mapping, lead, key)
        fields = self.fields("organizations")
        seen = (
            str(payload.get("name") or "").strip(),
            str(payload.get("email_domain") or "").strip().lower(),
        )
        for _ in range(2):
            known = self._organizations.get(seen) or self._find_or_create_organization(payload, key)
            self._organizations[seen] = known
            diff = changed_fields(payload, known.values, no_clobber=mapping.no_clobber_fields)
            if known.keep_name:
                diff.pop("name", None)
            if not diff:
                return known.id
            try:
                org = self.pipedrive.update(
                    "organizations", known.id, to_body("organizations", diff, fields), key=key
                )
            except RecordRejected as exc:
                del self._organizations[seen]
                if exc.code not in {"NOT_FOUND", "DELETED"}:
                    raise
                continue  # deleted since this run found it: look again (once)
            known.values = values_of(flatten(org, fields), list(payload))
            return known.id
        raise RecordRejected(
            key, "ORGANIZATION_GONE", "the organization was deleted twice during the sync", field="company"
        )

    def _find_or_create_organization(self, payload: Mapping[str, Any], key: str) -> _KnownOrganization:
        """The organization cascade for a lead's company; a new organization when nothing matches."""
        fields = self.fields("organizations")
        match = self.matcher.organization_for_company(
            name=payload.get("name"), email_domain=payload.get("email_domain")
        )
        if match.record is None:
            org = self.pipedrive.create(
                "organizations", to_body("organizations", non_blank(payload), fields), key=key
            )
        else:
            org = match.record
        # Matched by its name or domain: the org's own spelling of the name stays.
        keep_name = match.step not in (None, "marketoid")
        return _KnownOrganization(org.id, values_of(flatten(org, fields), list(payload)), keep_name)

    def _write_back_pipedrive_ids(self, written: Sequence[_PersonWritten], results: list[Synced]) -> None:
        """Write pipedriveId on every lead that lacks it (one call per 300), then remember the pairs."""
        needed = [w for w in written if str(w.lead.get("pipedriveId") or "") != str(w.person.id)]
        answers = (
            self.marketo.sync_leads(
                [{"id": int(w.lead["id"]), "pipedriveId": w.person.id} for w in needed],
                action="updateOnly",
                lookup_field="id",
                keys=[w.key for w in needed],
            )
            if needed
            else []
        )
        refused = {w.index: answer for w, answer in zip(needed, answers, strict=True) if not answer.success}
        for w in written:
            answer = refused.get(w.index)
            if answer is not None:
                results[w.index] = marketo_failure(
                    w.key, results[w.index].outcome.action, answer, field="pipedriveId"
                )
                continue
            if self.memory:
                if w.remember_person:
                    self.memory.remember("person", w.person.id, self.person_snapshot(w.person))
                snapshot = self.lead_snapshot({**w.lead, "pipedriveId": w.person.id})
                self.memory.remember("lead", w.lead["id"], snapshot)

    # ---- Pipedrive person -> Marketo lead ---------------------------------------------------

    def person_flat(self, person: PipedriveRecord) -> dict[str, Any]:
        """The person as the person_to_lead mapping reads it (with its organization's name)."""
        org_name = None
        org_id = person.values.get("org_id")
        if org_id:
            org_id = int(org_id)
            if org_id not in self._organization_names:  # read once per run
                org = self.pipedrive.get("organizations", org_id)
                self._organization_names[org_id] = org.values.get("name") if org is not None else None
            org_name = self._organization_names[org_id]
        return flatten(person, self.fields("persons"), org_name=org_name)

    def person_to_lead(self, person: PipedriveRecord) -> Synced:
        """Create or update the lead of a person, and write marketoid back on the person."""
        return self.persons_to_leads([person])[0]

    def persons_to_leads(self, records: Sequence[PipedriveRecord]) -> list[Synced]:
        """:meth:`person_to_lead` for many persons: a few Marketo calls per 300 (persons.py)."""
        return persons.persons_to_leads(self, records)

    # ---- Pipedrive organization -> Marketo company ------------------------------------------

    def organization_to_company(self, org: PipedriveRecord) -> Synced:
        """Create or update the company of an organization, and write marketoid back on the org."""
        return self.organizations_to_companies([org])[0]

    def organizations_to_companies(self, records: Sequence[PipedriveRecord]) -> list[Synced]:
        """:meth:`organization_to_company` for many: a few Marketo calls per 300 (organizations.py)."""
        return organizations.organizations_to_companies(self, records)

    @cached_property
    def stage_names(self) -> dict[int, str]:
        """Stage names by id, every pipeline (one call per run)."""
        return self.pipedrive.stage_names()

    def deal_to_opportunity(self, deal: PipedriveRecord) -> list[Synced]:
        """The opportunity of a deal of a configured pipeline, then its contact's role (deals.py)."""
        return deals.deal_to_opportunity(self, deal)

    def deals_to_opportunities(self, records: Sequence[PipedriveRecord]) -> list[Synced]:
        """:meth:`deal_to_opportunity` for many deals, a few calls per 300 (deals.py)."""
        return deals.deals_to_opportunities(self, records)

    # ---- deletes ----------------------------------------------------------------------------

    def person_deleted(self, person_id: int, *, marketoid: Any = None) -> Synced:
        """A deleted person soft-deletes its lead: ``toDelete = true`` (seed 001)."""
        key = f"person:{int(person_id)}"
        match = self.matcher.lead_for_person({"id": int(person_id), "marketoid": marketoid})
        if match.record is None:
            outcome = Outcome(key=key, action=Action.DELETE, status=Status.SKIPPED, error_code="NO_LEAD")
            return Synced(outcome)
        lead_id = int(match.record["id"])
        if match.record.get("toDelete") is True:
            return unchanged(key, lead_id, match.step)
        [result] = self.marketo.sync_leads(
            [{"id": lead_id, "toDelete": True}], action="updateOnly", lookup_field="id", keys=[key]
        )
        if not result.success:
            return marketo_failure(key, Action.DELETE, result)
        return ok(key, Action.DELETE, lead_id, {"toDelete": True}, match.step)

    def lead_deleted(self, lead_id: int, *, pipedrive_id: Any = None) -> Synced:
        """A deleted lead removes its person; a person already gone (410) is fine."""
        key = f"lead:{int(lead_id)}"
        match = self.matcher.person_for_lead({"id": int(lead_id), "pipedriveId": pipedrive_id})
        if match.record is None:
            return Synced(
                Outcome(key=key, action=Action.DELETE, status=Status.SKIPPED, error_code="NO_PERSON")
            )
        if not self.pipedrive.delete("persons", match.record.id):
            return unchanged(key, match.record.id, match.step)
        return ok(key, Action.DELETE, match.record.id, {}, match.step)

    def lead_activity(self, lead_id: int, outbox: Outbox, run_id: str | None) -> Synced:
        """The lead's follow-up call in Pipedrive, once per lead and day (activities.py)."""
        return activities.lead_activity(self, lead_id, outbox, run_id)

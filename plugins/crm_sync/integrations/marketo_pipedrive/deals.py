"""Pipedrive deal -> Marketo opportunity and the contact's opportunity role (seed 001).

Only deals of the configured pipelines; the opportunity is matched by ``pd-deal-<id>`` and
written field by field; the role is upserted by its dedupe fields
(``externalOpportunityId, leadId, role``), ``role`` being the contact's title or
``Default Role``. Deals go in batches (see :func:`deals_to_opportunities`): a few calls per
300 deals instead of two or three per deal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from crm_sync.exceptions import QuotaExhausted, RecordRejected
from crm_sync.hooks.marketo_types import MAX_BATCH
from crm_sync.hooks.pipedrive import PipedriveRecord
from crm_sync.integrations.marketo_pipedrive.records import flatten
from crm_sync.integrations.marketo_pipedrive.results import (
    Synced,
    marketo_failure,
    non_blank,
    ok,
    parked,
    rejected,
    unchanged,
)
from crm_sync.sync.adapters import is_blank
from crm_sync.sync.mapping import changed_fields
from crm_sync.sync.records import Action, Outcome, Status

if TYPE_CHECKING:
    from crm_sync.integrations.marketo_pipedrive.entities import EntitySync

__all__ = ["deal_flat", "deal_to_opportunity", "deals_to_opportunities"]

ROLE_KEY = ("externalOpportunityId", "leadId", "role")
#: Ids per Pipedrive list request (the v2 ``ids`` filter takes at most 100).
PERSONS_PER_LIST = 100
#: The matching step of an opportunity found by ``pd-deal-<id>``.
STEP = "externalOpportunityId"


@dataclass
class _Deal:
    """One deal of a configured pipeline on its way: its flat values and mapped opportunity."""

    record: PipedriveRecord
    key: str
    flat: dict[str, Any] = field(default_factory=dict)
    payload: dict[str, Any] = field(default_factory=dict)
    results: list[Synced] = field(default_factory=list)


def deal_flat(
    sync: EntitySync, deal: PipedriveRecord, persons: Mapping[int, PipedriveRecord] | None = None
) -> dict[str, Any]:
    """The deal as the deal mappings read it: its stage name and its contact's lead id and title.

    ``persons`` holds the contacts read for a batch (by id; one absent is gone); without it the
    contact is read now.
    """
    person_marketoid = person_title = None
    person_id = deal.values.get("person_id")
    if person_id:
        person = (
            persons.get(int(person_id))
            if persons is not None
            else sync.pipedrive.get("persons", int(person_id))
        )
        if person is not None:
            flat_person = flatten(person, sync.fields("persons"))
            person_marketoid, person_title = flat_person.get("marketoid"), flat_person.get("job_title")
    stage_id = deal.values.get("stage_id")
    return flatten(
        deal,
        sync.fields("deals"),
        stage_name=sync.stage_names.get(int(stage_id)) if stage_id else None,
        person_marketoid=person_marketoid,
        person_job_title=person_title,
    )


def deal_to_opportunity(sync: EntitySync, deal: PipedriveRecord) -> list[Synced]:
    """The opportunity of a deal of a configured pipeline, then its contact's role.

    Returns:
        The opportunity's result, then the role's (when the contact has a lead).
    """
    return deals_to_opportunities(sync, [deal])


def deals_to_opportunities(sync: EntitySync, deals: Sequence[PipedriveRecord]) -> list[Synced]:
    """:func:`deal_to_opportunity` for many deals, 300 at a time.

    Per batch: one Pipedrive read of the deals' contacts (100 ids a call), one Marketo query
    for their opportunities, one upsert of those that changed, one query and one upsert of
    the roles. Results come per deal, in order: the opportunity's, then the role's.
    """
    out: list[Synced] = []
    for start in range(0, len(deals), MAX_BATCH):
        batch = [_Deal(deal, f"deal:{deal.id}") for deal in deals[start : start + MAX_BATCH]]
        wanted = [d for d in batch if _in_pipelines(sync, d)]
        try:
            persons = _contacts(sync, wanted)
        except QuotaExhausted as exc:  # Pipedrive's daily budget: the batch waits for the reset
            for deal in wanted:
                deal.results.append(parked(deal.key, Action.UPDATE, exc))
            wanted, persons = [], {}
        prepared = [d for d in wanted if _prepare(sync, d, persons)]
        _opportunities(sync, prepared)
        _roles(sync, [d for d in prepared if _needs_role(d)])
        for deal in batch:
            out.extend(deal.results)
    return out


def _in_pipelines(sync: EntitySync, deal: _Deal) -> bool:
    if deal.record.values.get("pipeline_id") in sync.pipeline_ids:
        return True
    outcome = Outcome(
        key=deal.key,
        action=Action.SKIP,
        status=Status.SKIPPED,
        error_code="PIPELINE_NOT_SYNCED",
        message="the deal's pipeline is not one of the configured pipelines",
    )
    deal.results.append(Synced(outcome))
    return False


def _contacts(sync: EntitySync, deals: Sequence[_Deal]) -> dict[int, PipedriveRecord]:
    """The deals' contact persons, read in lists of 100 ids (a person gone is simply absent)."""
    ids = sorted({int(d.record.values["person_id"]) for d in deals if d.record.values.get("person_id")})
    found: dict[int, PipedriveRecord] = {}
    for start in range(0, len(ids), PERSONS_PER_LIST):
        chunk = ids[start : start + PERSONS_PER_LIST]
        found.update((p.id, p) for p in sync.pipedrive.iter_records("persons", ids=chunk))
    return found


def _prepare(sync: EntitySync, deal: _Deal, persons: Mapping[int, PipedriveRecord]) -> bool:
    """Flatten and map the deal; a mapping problem becomes the deal's rejection."""
    try:
        deal.flat = deal_flat(sync, deal.record, persons)
        deal.payload = sync.apply_mapping(sync.mappings.deal_to_opportunity, deal.flat, deal.key)
    except RecordRejected as exc:
        deal.results.append(rejected(deal.key, Action.UPDATE, exc))
        return False
    except QuotaExhausted as exc:
        deal.results.append(parked(deal.key, Action.UPDATE, exc))
        return False
    return True


def _opportunities(sync: EntitySync, deals: Sequence[_Deal]) -> None:
    """Match every deal's opportunity with one query, then upsert the new and changed ones at once."""
    if not deals:
        return
    try:
        existing = sync.matcher.opportunities_for_deals([d.record.id for d in deals])
    except QuotaExhausted as exc:
        for deal in deals:
            deal.results.append(parked(deal.key, Action.UPDATE, exc))
        return
    no_clobber = sync.mappings.deal_to_opportunity.no_clobber_fields
    writes: list[tuple[_Deal, Action, dict[str, Any], dict[str, Any] | None]] = []
    for deal in deals:
        current = existing[deal.record.id].record if deal.record.id in existing else None
        if current is None:
            sent = non_blank(deal.payload)
            writes.append((deal, Action.CREATE, sent, None))
            continue
        diff = changed_fields(deal.payload, current, no_clobber=no_clobber)
        if not diff:
            deal.results.append(unchanged(deal.key, current.get("marketoGUID"), STEP))
            continue
        writes.append(
            (
                deal,
                Action.UPDATE,
                {"externalOpportunityId": deal.payload["externalOpportunityId"], **diff},
                diff,
            )
        )
    if not writes:
        return
    answers = sync.marketo.sync_opportunities([w[2] for w in writes], keys=[w[0].key for w in writes])
    for (deal, action, body, diff), answer in zip(writes, answers, strict=True):
        if not answer.success:
            deal.results.append(marketo_failure(deal.key, action, answer))
        elif diff is None:
            deal.results.append(ok(deal.key, action, answer.id, body, None))
        else:
            deal.results.append(ok(deal.key, action, answer.id, diff, STEP))


def _needs_role(deal: _Deal) -> bool:
    """Whether the opportunity is there (written or unchanged) and the contact has a lead."""
    outcome = deal.results[-1].outcome if deal.results else None
    there = outcome is not None and (outcome.status is Status.SUCCESS or outcome.action is Action.UNCHANGED)
    return there and not is_blank(deal.flat.get("person_marketoid"))


def _roles(sync: EntitySync, deals: Sequence[_Deal]) -> None:
    """Each deal's contact role: one query for all, one upsert of the new and changed ones."""
    mapped: list[tuple[_Deal, str, dict[str, Any]]] = []
    for deal in deals:
        role_key = f"role:{deal.record.id}"
        try:
            payload = sync.apply_mapping(sync.mappings.deal_to_opportunity_role, deal.flat, role_key)
        except RecordRejected as exc:
            deal.results.append(rejected(role_key, Action.UPDATE, exc))
            continue
        mapped.append((deal, role_key, payload))
    if not mapped:
        return
    try:
        found = sync.marketo.query_roles_by_key(
            [{k: payload[k] for k in ROLE_KEY} for _, _, payload in mapped],
            ["marketoGUID", "isPrimary", *ROLE_KEY],
        )
    except QuotaExhausted as exc:
        for deal, role_key, _ in mapped:
            deal.results.append(parked(role_key, Action.UPDATE, exc))
        return
    by_key = {_role_key(role): role for role in found}
    writes: list[tuple[_Deal, str, dict[str, Any], bool]] = []
    for deal, role_key, payload in mapped:
        current = by_key.get(_role_key(payload))
        if current is not None and not changed_fields(payload, current):
            deal.results.append(unchanged(role_key, current.get("marketoGUID"), "dedupeFields"))
        else:
            writes.append((deal, role_key, payload, current is not None))
    if not writes:
        return
    answers = sync.marketo.sync_opportunity_roles([w[2] for w in writes], keys=[w[1] for w in writes])
    for (deal, role_key, payload, matched), answer in zip(writes, answers, strict=True):
        if not answer.success:
            deal.results.append(marketo_failure(role_key, Action.UPDATE, answer))
            continue
        action = Action.CREATE if answer.status == "created" else Action.UPDATE
        deal.results.append(ok(role_key, action, answer.id, payload, "dedupeFields" if matched else None))


def _role_key(role: Mapping[str, Any]) -> tuple[str, ...]:
    """A role's dedupe key as text (Marketo answers ``leadId`` as a number, the payload may hold text)."""
    return tuple(str(role.get(k)).strip().casefold() for k in ROLE_KEY)

"""Pipedrive deal -> Marketo opportunity and the contact's opportunity role (seed 001).

Only deals of the configured pipelines; the opportunity is matched by ``pd-deal-<id>`` and
written field by field; the role is upserted by its dedupe fields
(``externalOpportunityId, leadId, role``), ``role`` being the contact's title or
``Default Role``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from crm_sync.hooks.pipedrive import PipedriveRecord
from crm_sync.integrations.marketo_pipedrive.records import flatten
from crm_sync.integrations.marketo_pipedrive.results import Synced, marketo_failure, non_blank, ok, unchanged
from crm_sync.sync.adapters import is_blank
from crm_sync.sync.mapping import changed_fields
from crm_sync.sync.records import Action, Outcome, Status

if TYPE_CHECKING:
    from crm_sync.integrations.marketo_pipedrive.entities import EntitySync

__all__ = ["deal_flat", "deal_to_opportunity"]


def deal_flat(sync: EntitySync, deal: PipedriveRecord) -> dict[str, Any]:
    """The deal as the deal mappings read it: its stage name and its contact's lead id and title."""
    person_marketoid = person_title = None
    person_id = deal.values.get("person_id")
    if person_id:
        person = sync.pipedrive.get("persons", int(person_id))
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
    key = f"deal:{deal.id}"
    if deal.values.get("pipeline_id") not in sync.pipeline_ids:
        outcome = Outcome(
            key=key,
            action=Action.SKIP,
            status=Status.SKIPPED,
            error_code="PIPELINE_NOT_SYNCED",
            message="the deal's pipeline is not one of the configured pipelines",
        )
        return [Synced(outcome)]
    flat: dict[str, Any] = {}

    def opportunity() -> Synced:
        flat.update(deal_flat(sync, deal))
        return _deal_to_opportunity(sync, flat, key)

    results = [sync.guard(key, Action.UPDATE, opportunity)]
    opportunity_there = results[0].outcome.status is Status.SUCCESS or (
        results[0].outcome.action is Action.UNCHANGED
    )
    if opportunity_there and not is_blank(flat.get("person_marketoid")):
        role_key = f"role:{deal.id}"
        results.append(sync.guard(role_key, Action.UPDATE, lambda: _role(sync, flat, role_key)))
    return results


def _deal_to_opportunity(sync: EntitySync, flat: Mapping[str, Any], key: str) -> Synced:
    mapping = sync.mappings.deal_to_opportunity
    payload = sync.apply_mapping(mapping, flat, key)
    match = sync.matcher.opportunity_for_deal(int(flat["id"]))
    if match.record is None:
        sent = non_blank(payload)
        [result] = sync.marketo.sync_opportunities([sent], keys=[key])
        if not result.success:
            return marketo_failure(key, Action.CREATE, result)
        return ok(key, Action.CREATE, result.id, sent, None)
    current = match.record
    diff = changed_fields(payload, current, no_clobber=mapping.no_clobber_fields)
    if not diff:
        return unchanged(key, current.get("marketoGUID"), match.step)
    body = {"externalOpportunityId": payload["externalOpportunityId"], **diff}
    [result] = sync.marketo.sync_opportunities([body], keys=[key])
    if not result.success:
        return marketo_failure(key, Action.UPDATE, result)
    return ok(key, Action.UPDATE, result.id, diff, match.step)


def _role(sync: EntitySync, flat: Mapping[str, Any], key: str) -> Synced:
    payload = sync.apply_mapping(sync.mappings.deal_to_opportunity_role, flat, key)
    dedupe = {k: payload[k] for k in ("externalOpportunityId", "leadId", "role")}
    found = sync.marketo.query_roles_by_key([dedupe], ["marketoGUID", "isPrimary", *dedupe])
    if found and not changed_fields(payload, found[0]):
        return unchanged(key, found[0].get("marketoGUID"), "dedupeFields")
    [result] = sync.marketo.sync_opportunity_roles([payload], keys=[key])
    if not result.success:
        return marketo_failure(key, Action.UPDATE, result)
    action = Action.CREATE if result.status == "created" else Action.UPDATE
    return ok(key, action, result.id, payload, "dedupeFields" if found else None)

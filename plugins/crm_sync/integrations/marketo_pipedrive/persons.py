"""Pipedrive person -> Marketo lead, 300 persons at a time (seed 001).

Per batch: the persons whose change only reflects this sync's own write are skipped (no
echo); the others are mapped, matched with at most two lead queries (by the person's
``marketoid``, then by the lead's ``pipedriveId``), and written with at most three Marketo
calls (new leads by email, new leads with the placeholder address as duplicates, changed
leads by id). The person then gets ``marketoid`` (one Pipedrive call where it differs: the
v2 API has no batch update) and both records are remembered.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from crm_sync.hooks.pipedrive import PipedriveRecord
from crm_sync.integrations.marketo_pipedrive import to_marketo
from crm_sync.integrations.marketo_pipedrive.results import Synced, moment, non_blank, unchanged
from crm_sync.integrations.marketo_pipedrive.to_marketo import Pending
from crm_sync.sync.mapping import changed_fields

if TYPE_CHECKING:
    from crm_sync.integrations.marketo_pipedrive.entities import EntitySync

__all__ = ["PLACEHOLDER_EMAIL", "persons_to_leads"]

PLACEHOLDER_EMAIL = "unknown@unknown.com"


def persons_to_leads(sync: EntitySync, persons: Sequence[PipedriveRecord]) -> list[Synced]:
    """Create or update the lead of each person and write ``marketoid`` back; one result each, in order."""
    out: list[Synced] = []
    for batch in to_marketo.batches(persons, "person"):
        live = to_marketo.prepare(
            sync,
            batch,
            entity="person",
            snapshot=sync.person_snapshot,
            flat=sync.person_flat,
            mapping=sync.mappings.person_to_lead,
        )
        if to_marketo.match(live, sync.matcher.leads_for_persons):
            _write(sync, live)
            for person in live:
                _finish(sync, person)
        out.extend(p.result for p in batch if p.result is not None)
    return out


def _write(sync: EntitySync, persons: Sequence[Pending]) -> None:
    """Create the new leads and update the changed ones: one Marketo call per kind of write."""
    creates: list[tuple[Pending, dict[str, Any], dict[str, Any]]] = []
    duplicates: list[tuple[Pending, dict[str, Any], dict[str, Any]]] = []
    updates: list[tuple[Pending, dict[str, Any], dict[str, Any]]] = []
    for person in persons:
        if not person.match.found:
            sent = non_blank(person.payload)
            # The placeholder address must never merge two strangers into one lead.
            (duplicates if sent.get("email") == PLACEHOLDER_EMAIL else creates).append((person, sent, sent))
            continue
        diff = _diff(sync, person)
        if diff:
            updates.append((person, {"id": int(person.target["id"]), **diff}, diff))
        else:
            person.result = unchanged(person.key, person.target["id"], person.match.step)

    def leads(action: str, lookup_field: str) -> to_marketo.Write:
        return lambda records, keys: sync.marketo.sync_leads(
            records, action=action, lookup_field=lookup_field, keys=keys
        )

    to_marketo.send(creates, leads("createOrUpdate", "email"), create=True)
    to_marketo.send(duplicates, leads("createDuplicate", "email"), create=True)
    to_marketo.send(updates, leads("updateOnly", "id"), create=False)


def _diff(sync: EntitySync, person: Pending) -> dict[str, Any]:
    """The changed, non-empty fields of a matched lead, after the conflict rule."""
    lead = person.target
    mapping = sync.mappings.person_to_lead
    diff = changed_fields(person.payload, lead, no_clobber=mapping.no_clobber_fields)
    if diff.get("email") == PLACEHOLDER_EMAIL:
        del diff["email"]  # never replace a real address with the placeholder
    if diff and sync.memory:
        diff, person.conflicts = sync.memory.resolve(
            "person",
            target_entity="lead",
            target_key=int(lead["id"]),
            diff=diff,
            target_current=lead,
            source_side="pipedrive",
            source_changed_at=person.record.update_time,
            target_changed_at=moment(lead.get("updatedAt")),
            record_key=person.key,
        )
    return diff


def _finish(sync: EntitySync, person: Pending) -> None:
    """Write ``marketoid`` on the person where it differs, then remember both records."""
    if not person.written:
        return
    record = to_marketo.write_back(sync, person, "persons")
    if record is None or not sync.memory or person.result is None:
        return
    sync.memory.remember("person", record.id, sync.person_snapshot(record))
    if not any(c.winner == "target" for c in person.conflicts):
        lead = {**person.target, **person.result.written}
        sync.memory.remember("lead", person.target["id"], sync.lead_snapshot(lead))

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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from crm_sync.exceptions import QuotaExhausted, RecordRejected
from crm_sync.hooks.marketo import MarketoResult
from crm_sync.hooks.marketo_types import MAX_BATCH
from crm_sync.hooks.pipedrive import PipedriveRecord
from crm_sync.integrations.marketo_pipedrive.matching import Match
from crm_sync.integrations.marketo_pipedrive.memory import Conflict
from crm_sync.integrations.marketo_pipedrive.records import to_body
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
from crm_sync.sync.mapping import changed_fields
from crm_sync.sync.records import Action, Status

if TYPE_CHECKING:
    from crm_sync.integrations.marketo_pipedrive.entities import EntitySync

__all__ = ["PLACEHOLDER_EMAIL", "persons_to_leads"]

PLACEHOLDER_EMAIL = "unknown@unknown.com"


@dataclass
class _Person:
    """One person on its way to a lead."""

    record: PipedriveRecord
    key: str
    flat: dict[str, Any] = field(default_factory=dict)
    payload: dict[str, Any] = field(default_factory=dict)
    match: Match[dict[str, Any]] = field(default_factory=lambda: Match(None))
    lead: dict[str, Any] = field(default_factory=dict)
    conflicts: list[Conflict] = field(default_factory=list)
    result: Synced | None = None


def persons_to_leads(sync: EntitySync, persons: Sequence[PipedriveRecord]) -> list[Synced]:
    """Create or update the lead of each person and write ``marketoid`` back; one result each, in order."""
    out: list[Synced] = []
    for start in range(0, len(persons), MAX_BATCH):
        batch = [_Person(p, f"person:{p.id}") for p in persons[start : start + MAX_BATCH]]
        live = [p for p in batch if _prepare(sync, p)]
        if _match(sync, live):
            _write(sync, live)
            for person in live:
                _finish(sync, person)
        out.extend(p.result for p in batch if p.result is not None)
    return out


def _prepare(sync: EntitySync, person: _Person) -> bool:
    """Skip an echo; flatten and map the rest (a mapping problem rejects that person)."""
    record = person.record
    if sync.memory and sync.memory.is_echo("person", record.id, sync.person_snapshot(record)):
        person.result = echo(person.key)
        return False
    try:
        person.flat = sync.person_flat(record)
        person.payload = sync.apply_mapping(sync.mappings.person_to_lead, person.flat, person.key)
    except RecordRejected as exc:
        person.result = rejected(person.key, Action.UPDATE, exc)
        return False
    except QuotaExhausted as exc:
        person.result = parked(person.key, Action.UPDATE, exc)
        return False
    return True


def _match(sync: EntitySync, persons: Sequence[_Person]) -> bool:
    """Find every person's lead with batched queries; False when the quota parked them all."""
    if not persons:
        return False
    try:
        matches = sync.matcher.leads_for_persons([p.flat for p in persons])
    except QuotaExhausted as exc:
        for person in persons:
            person.result = parked(person.key, Action.UPDATE, exc)
        return False
    for person in persons:
        person.match = matches.get(person.record.id, Match(None))
    return True


def _write(sync: EntitySync, persons: Sequence[_Person]) -> None:
    """Create the new leads and update the changed ones: one Marketo call per kind of write."""
    creates: list[tuple[_Person, dict[str, Any]]] = []
    duplicates: list[tuple[_Person, dict[str, Any]]] = []
    updates: list[tuple[_Person, dict[str, Any]]] = []
    for person in persons:
        if person.match.record is None:
            sent = non_blank(person.payload)
            # The placeholder address must never merge two strangers into one lead.
            (duplicates if sent.get("email") == PLACEHOLDER_EMAIL else creates).append((person, sent))
            continue
        person.lead = dict(person.match.record)
        diff = _diff(sync, person)
        if diff:
            updates.append((person, diff))
        else:
            person.result = unchanged(person.key, person.lead["id"], person.match.step)
    for action, todo in (("createOrUpdate", creates), ("createDuplicate", duplicates)):
        answers = _send(sync, todo, action=action, lookup_field="email")
        for (person, sent), answer in zip(todo, answers, strict=True):
            if not answer.success:
                person.result = marketo_failure(person.key, Action.CREATE, answer)
                continue
            done = Action.CREATE if answer.status == "created" else Action.UPDATE
            person.lead = {"id": int(answer.id or 0)}
            person.result = ok(person.key, done, person.lead["id"], sent, None)
    bodies = [(person, {"id": int(person.lead["id"]), **diff}) for person, diff in updates]
    answers = _send(sync, bodies, action="updateOnly", lookup_field="id")
    for (person, diff), answer in zip(updates, answers, strict=True):
        if not answer.success:
            person.result = marketo_failure(person.key, Action.UPDATE, answer)
            continue
        person.result = ok(person.key, Action.UPDATE, person.lead["id"], diff, person.match.step)


def _diff(sync: EntitySync, person: _Person) -> dict[str, Any]:
    """The changed, non-empty fields of a matched lead, after the conflict rule."""
    lead = person.lead
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


def _send(
    sync: EntitySync, todo: Sequence[tuple[_Person, dict[str, Any]]], *, action: str, lookup_field: str
) -> list[MarketoResult]:
    if not todo:
        return []
    records = [body for _, body in todo]
    keys = [person.key for person, _ in todo]
    return sync.marketo.sync_leads(records, action=action, lookup_field=lookup_field, keys=keys)


def _finish(sync: EntitySync, person: _Person) -> None:
    """Write ``marketoid`` on the person where it differs, then remember both records."""
    result = person.result
    if result is None or not (
        result.outcome.status is Status.SUCCESS or result.outcome.action is Action.UNCHANGED
    ):
        return
    record, lead_id = person.record, int(person.lead["id"])
    try:
        if str(person.flat.get("marketoid") or "") != str(lead_id):
            body = to_body("persons", {"marketoid": str(lead_id)}, sync.fields("persons"))
            record = sync.pipedrive.update("persons", record.id, body, key=person.key)
    except RecordRejected as exc:
        person.result = rejected(person.key, result.outcome.action, exc)
        return
    except QuotaExhausted as exc:
        person.result = parked(person.key, result.outcome.action, exc)
        return
    if sync.memory:
        sync.memory.remember("person", record.id, sync.person_snapshot(record))
        if not any(c.winner == "target" for c in person.conflicts):
            sync.memory.remember("lead", lead_id, sync.lead_snapshot({**person.lead, **result.written}))

"""The DAG's steps: pull what changed in the window on each side and sync it across.

Marketo -> Pipedrive reads lead changes (New Lead / Change Data Value activities through the
paging token) and Delete Lead activities, and creates the follow-up activity of each lead with
a new interesting moment in the window; Pipedrive -> Marketo reads persons, organizations
and deals of the configured pipelines with ``updated_since``. Each scheduled run also retries
the records left parked (selection.py). A manual run can name one record instead (Params
``entity``, ``entity_id``, ``action``) or re-send ledger keys (Param ``keys``: those records
only, no window). ``full_refresh`` and ``keys`` diff every record against a fresh read of
the other side. Outcomes go to the engine's ledger per entity; XCom carries counts only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from sqlalchemy.engine import Engine

from crm_sync.exceptions import ConfigurationError
from crm_sync.hooks.marketo import MarketoHook
from crm_sync.hooks.pipedrive import PipedriveHook
from crm_sync.integrations.marketo_pipedrive import activities
from crm_sync.integrations.marketo_pipedrive.entities import EntitySync, Synced
from crm_sync.integrations.marketo_pipedrive.mappings import load_mapping_set
from crm_sync.integrations.marketo_pipedrive.memory import RecordMemory
from crm_sync.integrations.marketo_pipedrive.selection import KeySet, parked_keys, parse_keys
from crm_sync.operators.context import SyncRun
from crm_sync.sync.ledger import apply_outcomes
from crm_sync.sync.outbox import Outbox
from crm_sync.sync.records import Action, Outcome, Status

__all__ = ["ENTITIES", "INTEGRATION", "WINDOW", "marketo_to_pipedrive", "pipedrive_to_marketo"]

log = logging.getLogger(__name__)

INTEGRATION = "marketo_pipedrive"
WINDOW = timedelta(minutes=10)
#: Manual-run entities: which side each lives on.
ENTITIES = {"lead": "marketo", "person": "pipedrive", "organization": "pipedrive", "deal": "pipedrive"}


def _sync(run: SyncRun, engine: Engine) -> EntitySync:
    config = dict(run.params.get("config") or {})
    fresh = run.full_refresh or bool(run.requested_keys())
    memory = RecordMemory(engine, run.run_id, rules=config.get("conflict_rules") or {}, fresh=fresh)
    sync = EntitySync(
        MarketoHook(),
        PipedriveHook(),
        load_mapping_set(),
        pipelines=config.get("pipelines") or ("NX Subscription (New and Upsell)",),
        run_date=(run.window_end.date() if run.window_end else None),
        memory=memory,
    )
    sync.check()
    return sync


def _window(run: SyncRun) -> tuple[Any, Any]:
    if run.window_end is None:
        raise ConfigurationError("the run has no window end")
    return run.window_start or run.window_end - WINDOW, run.window_end


def _record(engine: Engine, run: SyncRun, entity: str, results: Iterable[Synced]) -> dict[str, int]:
    outcomes = [r.outcome for r in results]
    counts = apply_outcomes(
        engine, run_id=run.run_id, integration=INTEGRATION, entity=entity, outcomes=outcomes
    )
    return counts.as_dict()


def _manual(run: SyncRun, side: str) -> tuple[str, int, str] | None:
    """``(entity, id, action)`` of a manual run for records of ``side``; None for a window run."""
    entity, entity_id = run.params.get("entity"), run.params.get("entity_id")
    if not entity or entity_id in (None, ""):
        return None
    if entity not in ENTITIES:
        raise ConfigurationError(f"entity must be one of {sorted(ENTITIES)}, not {entity!r}")
    return (
        (entity, int(entity_id), str(run.params.get("action") or "sync"))
        if ENTITIES[entity] == side
        else None
    )


def _summary(sync: EntitySync, counts: dict[str, dict[str, int]]) -> dict[str, Any]:
    return {
        "counts": counts,
        "conflicts": sync.memory.conflicts if sync.memory else 0,
        "api_calls": {
            "total": sync.marketo.api_calls["total"] + int(sync.pipedrive.api_calls.get("total", 0)),
            "marketo": sync.marketo.api_calls["total"],
            "pipedrive": int(sync.pipedrive.api_calls.get("total", 0)),
        },
    }


def _extra(run: SyncRun, engine: Engine) -> tuple[KeySet, bool]:
    """Records to sync besides the window, and whether the window is read at all.

    A run given ``keys`` syncs exactly those; any other window run adds the parked records.
    """
    requested = run.requested_keys()
    if requested:
        return parse_keys(requested), False
    return parse_keys(parked_keys(engine), strict=False), True


def marketo_to_pipedrive(run: SyncRun, engine: Engine) -> dict[str, Any]:
    """Leads changed or deleted in Marketo -> Pipedrive persons (and organizations), follow-ups."""
    if run.dry_run:
        return {"counts": {}, "dry_run": True}
    sync = _sync(run, engine)
    manual = _manual(run, "marketo")
    outbox = Outbox(engine, INTEGRATION)
    if manual is not None and manual[2] == "activity":
        # The original's /marketo/lead/<id>/activity: a follow-up call, once whatever the retries.
        result = sync.lead_activity(manual[1], outbox, run.run_id)
        return _summary(sync, {"activity": _record(engine, run, "activity", [result])})
    changed: list[int] = []
    deleted: list[int] = []
    retry: list[int] = []
    follow_up: list[int] = []
    window: tuple[Any, Any] | None = None
    if manual is not None:
        changed = [] if manual[2] == "delete" else [manual[1]]
        deleted = [manual[1]] if manual[2] == "delete" else []
    elif not run.params.get("entity"):  # else a manual run for a Pipedrive record: nothing here
        extra, read_window = _extra(run, engine)
        if read_window:
            window = since, until = _window(run)
            watched = [f for f in sync.matcher.lead_fields if f not in ("id", "pipedriveId")]
            watched += [f for f in activities.MOMENT_FIELDS if f not in watched]
            changes = sync.marketo.lead_changes(since, watched, until=until)
            changed = list(dict.fromkeys(a.lead_id for a in changes))
            gone = sync.marketo.deleted_leads(since, until=until)
            deleted = list(dict.fromkeys(a.lead_id for a in gone))
        retry = [i for i in extra.of("lead") if i not in changed and i not in deleted]
        follow_up = extra.of("activity")
    fields = [*sync.matcher.lead_fields, *activities.MOMENT_FIELDS]
    wanted = changed + retry
    leads = list(sync.marketo.get_leads("id", wanted, fields)) if wanted else []
    found = {int(lead["id"]) for lead in leads}
    # A lead to retry that no longer exists: its person goes too (as a Delete Lead would do).
    deleted += [i for i in retry if i not in found]
    counts = {
        "lead": _record(engine, run, "lead", sync.leads_to_persons(leads)),
        "lead_delete": _record(
            engine, run, "lead", [sync.lead_deleted(i) for i in deleted if i not in found]
        ),
    }
    if window is not None:
        new_moments = [int(lead["id"]) for lead in leads if activities.needs_follow_up(lead, *window)]
        follow_up += [i for i in new_moments if i not in follow_up]
    if follow_up:
        made = [sync.lead_activity(i, outbox, run.run_id) for i in follow_up]
        counts["activity"] = _record(engine, run, "activity", made)
    return _summary(sync, counts)


def pipedrive_to_marketo(run: SyncRun, engine: Engine) -> dict[str, Any]:
    """Persons, organizations and deals changed in Pipedrive -> Marketo leads, companies, opportunities."""
    if run.dry_run:
        return {"counts": {}, "dry_run": True}
    sync = _sync(run, engine)
    manual = _manual(run, "pipedrive")
    results: dict[str, list[Synced]] = {"person": [], "organization": [], "deal": []}
    if manual is not None:
        entity, record_id, action = manual
        if action == "activity":
            raise ConfigurationError("action 'activity' is for a Marketo lead (entity 'lead')")
        if action == "delete":
            if entity != "person":
                raise ConfigurationError("only a person delete is synced (the lead is marked toDelete)")
            results["person"].append(sync.person_deleted(record_id))
        else:
            results[entity] += _by_id(sync, entity, record_id)
    elif not run.params.get("entity"):
        extra, read_window = _extra(run, engine)
        seen: dict[str, set[int]] = {entity: set() for entity in results}
        changed: dict[str, list[Any]] = {entity: [] for entity in results}
        if read_window:
            since, until = _window(run)
            for entity, record in _window_records(sync, since, until):
                seen[entity].add(record.id)
                changed[entity].append(record)
        # Organizations first, then persons (their company name), then deals; in batches.
        for entity in ("organization", "person", "deal"):
            records = changed[entity]
            for record_id in extra.of(entity):
                if record_id not in seen[entity]:
                    record = _read(sync, entity, record_id, results)
                    if record is not None:
                        records.append(record)
            results[entity] += _many(sync, entity, records)
    counts = {entity: _record(engine, run, entity, items) for entity, items in results.items()}
    return _summary(sync, counts)


def _window_records(sync: EntitySync, since: Any, until: Any) -> Iterable[tuple[str, Any]]:
    """``(entity, record)`` of every organization, person and configured-pipeline deal changed."""
    for entity, plural in (("organization", "organizations"), ("person", "persons")):
        for record in sync.pipedrive.iter_records(plural, updated_since=since, updated_until=until):
            yield entity, record
    for pipeline_id in sorted(sync.pipeline_ids):
        deals = sync.pipedrive.iter_records(
            "deals", updated_since=since, updated_until=until, pipeline_id=pipeline_id
        )
        for record in deals:
            yield "deal", record


def _by_id(sync: EntitySync, entity: str, record_id: int) -> list[Synced]:
    """Sync one Pipedrive record read now; a person that is gone marks its lead ``toDelete``."""
    results: dict[str, list[Synced]] = {entity: []}
    record = _read(sync, entity, record_id, results)
    return results[entity] if record is None else _many(sync, entity, [record])


def _read(sync: EntitySync, entity: str, record_id: int, results: dict[str, list[Synced]]) -> Any:
    """The record read now, or None with its outcome added: a gone person deletes, others NOT_FOUND."""
    record = sync.pipedrive.get(f"{entity}s", record_id)
    if record is None and entity == "person":
        results[entity].append(sync.person_deleted(record_id))
    elif record is None:
        outcome = Outcome(
            key=f"{entity}:{record_id}", action=Action.SKIP, status=Status.SKIPPED, error_code="NOT_FOUND"
        )
        results[entity].append(Synced(outcome))
    return record


def _many(sync: EntitySync, entity: str, records: list[Any]) -> list[Synced]:
    if entity == "person":
        return sync.persons_to_leads(records)
    if entity == "organization":
        return sync.organizations_to_companies(records)
    return sync.deals_to_opportunities(records)

"""Marketo lead -> Pipedrive follow-up activity, deduplicated through the outbox (seed 001).

The original created a new activity on every retry; here the operation is claimed in the
engine's outbox first (one follow-up per lead and day), and an attempt whose answer was lost
is looked up before anything is created again.

Which leads need one: the original was called by a Marketo campaign when a lead had a new
interesting moment. The scheduled run does the same from the lead changes it reads: a lead
whose ``lastInterestingMomentDate`` falls in the run's window gets its follow-up (the mapping's
note is that moment's description).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from crm_sync.exceptions import RecordRejected
from crm_sync.integrations.marketo_pipedrive.records import to_body
from crm_sync.integrations.marketo_pipedrive.results import Synced, moment, non_blank, ok, unchanged
from crm_sync.sync.adapters import is_blank
from crm_sync.sync.outbox import Outbox
from crm_sync.sync.records import Action, Outcome, Status

if TYPE_CHECKING:
    from crm_sync.integrations.marketo_pipedrive.entities import EntitySync

__all__ = ["MOMENT_FIELDS", "lead_activity", "needs_follow_up"]

MOMENT_FIELDS = ("lastInterestingMomentDate", "lastInterestingMomentDesc")
"""Lead fields that tell a new interesting moment (read and watched by the scheduled run)."""


def needs_follow_up(lead: Mapping[str, Any], since: datetime, until: datetime) -> bool:
    """Whether the lead had its last interesting moment in ``[since, until)``."""
    when = moment(lead.get("lastInterestingMomentDate"))
    return when is not None and since <= when < until


def lead_activity(sync: EntitySync, lead_id: int, outbox: Outbox, run_id: str | None) -> Synced:
    """Create the lead's follow-up call in Pipedrive, once per lead and day, whatever the retries.

    Only for a lead with an owner and a pipedriveId (seed 001). The operation is claimed
    in the outbox first: a done claim is skipped, and a pending one (an earlier attempt
    whose answer was lost) looks the activity up before creating it again.
    """
    key = f"activity:{int(lead_id)}"
    return sync.guard(key, Action.CREATE, lambda: _lead_activity(sync, int(lead_id), outbox, run_id, key))


def _lead_activity(sync: EntitySync, lead_id: int, outbox: Outbox, run_id: str | None, key: str) -> Synced:
    mapping = sync.mappings.lead_to_activity
    wanted = [f for f in mapping.source_fields if f != "run_date"]
    lead = sync.marketo.get_lead(lead_id, wanted)
    owner = (
        " ".join(str(lead.get(f) or "") for f in ("leadOwnerFirstName", "leadOwnerLastName")) if lead else ""
    )
    if lead is None or not owner.strip() or is_blank(lead.get("pipedriveId")):
        outcome = Outcome(
            key=key,
            action=Action.SKIP,
            status=Status.SKIPPED,
            error_code="NO_OWNER_OR_PERSON",
            message="a follow-up needs a lead with an owner and a Pipedrive person",
        )
        return Synced(outcome)
    payload = non_blank(sync.apply_mapping(mapping, {**lead, "run_date": sync.run_date}, key))
    op_key = Outbox.op_key("pipedrive_activity", lead_id, payload["due_date"])
    entry = outbox.claim(op_key, entity="activity", record_key=key, run_id=run_id)
    if entry.is_done:
        return unchanged(key, entry.target_id, "outbox")
    if not entry.is_new:
        # An earlier attempt may have created it before its answer was lost: look first.
        for existing in sync.pipedrive.iter_records("activities", person_id=payload["person_id"]):
            values = existing.values
            if (values.get("subject"), values.get("due_date")) == (
                payload["subject"],
                payload["due_date"],
            ):
                outbox.complete(op_key, str(existing.id))
                return unchanged(key, existing.id, "outbox")
    try:
        created = sync.pipedrive.create(
            "activities", to_body("activities", payload, sync.fields("activities")), key=key
        )
    except RecordRejected:
        outbox.fail(op_key, "REJECTED")
        raise
    outbox.complete(op_key, str(created.id))
    return ok(key, Action.CREATE, created.id, payload, None)

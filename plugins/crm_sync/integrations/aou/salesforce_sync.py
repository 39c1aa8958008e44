"""What the aou_salesforce_sync DAG runs: extracts, snapshots, the Pardot claim and the pushers.

Everything here is called inside tasks (never at DAG parse time) with the run's
:class:`~crm_sync.operators.context.SyncRun`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

from crm_sync.exceptions import RecordRejected
from crm_sync.hooks.database import SqlSourceHook
from crm_sync.hooks.salesforce import SalesforceSyncHook
from crm_sync.hooks.salesforce_records import outcome_for
from crm_sync.hooks.soql import fragment, select
from crm_sync.integrations.aou import source
from crm_sync.integrations.aou.config import AouConfig
from crm_sync.integrations.aou.pardot import match_pardot
from crm_sync.integrations.aou.payloads import salesforce_payload
from crm_sync.integrations.aou.relation import journey_ids, withdrawn_keys
from crm_sync.integrations.aou.transforms import CONTACT_FIELDS, JOURNEY_FIELDS
from crm_sync.operators.context import SyncRun
from crm_sync.sync.hashing import row_hash
from crm_sync.sync.records import Action, Change, Outcome, Status

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

INTEGRATION = "aou_salesforce_sync"
KEY = "HP_PMI_ID__c"
CONFIG_VARIABLE = "aou_salesforce_sync_config"
WITHDRAWAL_FIELDS = ("HP_Withdrawal_Date__c", "HP_Withdrawal_Status__c")
CONTACT_PAYLOAD_FIELDS = tuple(f for f in CONTACT_FIELDS if f != KEY)
JOURNEY_PAYLOAD_FIELDS = tuple(f for f in JOURNEY_FIELDS if f != KEY)
PARDOT_FIELDS = ("Id", "FirstName", "LastName", "Email", "Phone", "OwnerId", KEY)
_HAS_PMI = fragment(f"{KEY} != null")
_CLAIMED = "claimed an existing Pardot contact"


def aou_config(run: SyncRun) -> AouConfig:
    """The run's configuration: seed defaults, then the Variable, then the ``config`` Param."""
    from airflow.sdk import Variable

    stored = Variable.get(CONFIG_VARIABLE, default=None, deserialize_json=True) or {}
    return AouConfig.from_mapping({**stored, **(run.params.get("config") or {})})


def _pmi_ids(run: SyncRun) -> list[str] | None:
    # ``pmi_ids`` and the dashboard's ``keys`` both narrow the read, not only the diff.
    return run.requested_keys("pmi_ids") or None


def _limit(run: SyncRun) -> int | None:
    value = run.params.get("limit")
    return None if value in (None, "", 0) else int(value)


class AouRun:
    """One run's handles: config, the SQL source, Salesforce and its field types."""

    def __init__(self, run: SyncRun) -> None:
        self.run = run
        self.config = aou_config(run)

    @cached_property
    def source(self) -> Engine:
        """The participant database (connection ``aou_source``)."""
        return SqlSourceHook("aou_source").get_engine()

    @cached_property
    def salesforce(self) -> SalesforceSyncHook:
        """The Salesforce hook (connection ``salesforce_default``)."""
        return SalesforceSyncHook()

    def payload(self, sobject: str, row: Mapping[str, Any], fields: Sequence[str]) -> dict[str, Any]:
        """A source row typed as Salesforce stores it (so snapshot hashes compare equal)."""
        return salesforce_payload(row, self.salesforce.describe(sobject), fields)


# ---- extracts (stage) ---------------------------------------------------------------------------


def contact_records(run: SyncRun) -> Iterator[dict[str, Any] | RecordRejected]:
    """Participant Contacts from the source view, typed for Salesforce."""
    aou = AouRun(run)
    rows = source.extract_contacts(aou.source, config=aou.config, pmi_ids=_pmi_ids(run), limit=_limit(run))
    for row in rows:
        try:
            yield {KEY: row[KEY], **aou.payload(aou.config.contact_object, row, CONTACT_PAYLOAD_FIELDS)}
        except RecordRejected as rejected:
            yield rejected  # quarantined by the stage step; the rest of the batch goes on


def journey_records(run: SyncRun) -> Iterator[dict[str, Any] | RecordRejected]:
    """Participant journeys from the source view; a withdrawn one carries only its withdrawal."""
    aou = AouRun(run)
    rows = source.extract_journeys(aou.source, config=aou.config, pmi_ids=_pmi_ids(run), limit=_limit(run))
    for row in rows:
        fields = WITHDRAWAL_FIELDS if _is_withdrawn(row) else JOURNEY_PAYLOAD_FIELDS
        try:
            yield {KEY: row[KEY], **aou.payload(aou.config.journey_object, row, fields)}
        except RecordRejected as rejected:
            yield rejected


def _is_withdrawn(row: Mapping[str, Any]) -> bool:
    return str(row.get("HP_Withdrawal_Status__c") or "0").strip() in {"1", "True", "true"}


# ---- snapshots (full_refresh diffs) --------------------------------------------------------------


def contact_snapshot(run: SyncRun) -> Iterator[tuple[str, str, str | None]]:
    """Every Contact with a PMI ID, hashed over the fields the sync writes."""
    aou = AouRun(run)
    soql = select(aou.config.contact_object, ["Id", KEY, *CONTACT_PAYLOAD_FIELDS], where=_HAS_PMI)
    for record in aou.salesforce.query(soql):
        payload = {f: record.get(f) for f in CONTACT_PAYLOAD_FIELDS}
        yield str(record[KEY]), row_hash(payload), record["Id"]


def journey_snapshot(run: SyncRun) -> Iterator[tuple[str, str, str | None]]:
    """Every journey with a PMI ID, hashed over the fields the sync writes."""
    aou = AouRun(run)
    soql = select(aou.config.journey_object, ["Id", KEY, *JOURNEY_PAYLOAD_FIELDS], where=_HAS_PMI)
    for record in aou.salesforce.query(soql):
        withdrawn = _is_withdrawn(record)
        fields = WITHDRAWAL_FIELDS if withdrawn else JOURNEY_PAYLOAD_FIELDS
        yield str(record[KEY]), row_hash({f: record.get(f) for f in fields}), record["Id"]


# ---- Pardot claim ---------------------------------------------------------------------------------


def pardot_contacts(aou: AouRun) -> Iterator[dict[str, Any]]:
    """Contacts the Pardot connector created: no PMI ID, owned by a Pardot user."""
    where = fragment(f"{KEY} = null AND OwnerId IN {{}}", list(aou.config.pardot_owner_ids))
    soql = select(aou.config.contact_object, PARDOT_FIELDS, where=where)
    yield from aou.salesforce.query(soql)


def claim_pardot_contacts(run: SyncRun, changes: Iterable[Change]) -> tuple[list[Outcome], dict[str, int]]:
    """Claim existing Pardot Contacts for new participants instead of creating duplicates.

    A single match is updated in place (it gets the PMI ID and the participant's fields); an
    ambiguous match is reported (skipped, state untouched) and never guessed; no match is
    left to the push step, which creates the Contact.

    Returns:
        One outcome per claimed or ambiguous participant, and the hook's API calls.
    """
    new = [c for c in changes if c.action == Action.CREATE]
    if not new:
        return [], {}
    aou = AouRun(run)
    by_key = {c.key: c for c in new}
    participants = ({KEY: c.key, **(c.payload or {})} for c in new)
    decisions = list(match_pardot(participants, pardot_contacts(aou), owner_ids=aou.config.pardot_owner_ids))
    outcomes: list[Outcome] = []
    claims: list[tuple[Change, str]] = []
    for decision in decisions:
        change = by_key[decision.pmi_id]
        if decision.outcome == "ambiguous":
            outcomes.append(
                Outcome.skipped(
                    change,
                    "AMBIGUOUS_PARDOT_MATCH",
                    f"{len(decision.candidates)} Pardot contacts match ({decision.reason}): "
                    f"{', '.join(decision.candidates)}; resolve by hand",
                )
            )
        elif decision.outcome == "claim" and decision.contact_id:
            claims.append((change, decision.contact_id))
    if claims:
        records = [{"Id": cid, KEY: change.key, **(change.payload or {})} for change, cid in claims]
        results = aou.salesforce.update(aou.config.contact_object, records)
        for (change, contact_id), result in zip(claims, results, strict=True):
            outcome = outcome_for(change, result)
            if outcome.status == Status.SUCCESS:
                outcome = replace(outcome, action=Action.CLAIM, target_id=contact_id, message=_CLAIMED)
            outcomes.append(outcome)
    log.info(
        "Pardot claim: %d claimed, %d ambiguous, of %d new participants",
        len(claims),
        sum(d.outcome == "ambiguous" for d in decisions),
        len(new),
    )
    return outcomes, dict(aou.salesforce.api_calls)


# ---- pushers -----------------------------------------------------------------------------------


class _SalesforcePusher:
    """What both pushers report to the push operator: Salesforce's calls and budget."""

    aou: AouRun

    def api_calls(self) -> Mapping[str, int]:
        """Salesforce calls made by this pusher."""
        return self.aou.salesforce.api_calls

    def budget_left(self) -> Mapping[str, int | None]:
        """Salesforce's daily budget left."""
        return {"salesforce": self.aou.salesforce.budget_left}


class ContactPusher(_SalesforcePusher):
    """Upserts Contacts on the PMI ID; a withdrawn participant's Contact is created, never updated."""

    def __init__(self, run: SyncRun, engine: Engine) -> None:
        self.aou = AouRun(run)
        self.withdrawn = withdrawn_keys(engine, run_id=run.run_id, integration=run.integration)

    def push(self, changes: Sequence[Change]) -> list[Outcome]:
        """Upsert creates and updates; skip updates of withdrawn participants."""
        skipped = [
            Outcome.skipped(c, "WITHDRAWN", "participant withdrew: the Contact is no longer updated")
            for c in changes
            if c.action == Action.UPDATE and c.key in self.withdrawn
        ]
        skipped_keys = {o.key for o in skipped}
        send = [c for c in changes if c.key not in skipped_keys]
        sent = self.aou.salesforce.push_changes(self.aou.config.contact_object, KEY, send) if send else []
        return [*sent, *skipped]


class JourneyPusher(_SalesforcePusher):
    """Updates journeys (Salesforce creates them with the Contact) found through the relation."""

    def __init__(self, run: SyncRun, engine: Engine) -> None:
        self.aou = AouRun(run)
        self.journeys = journey_ids(engine)

    def push(self, changes: Sequence[Change]) -> list[Outcome]:
        """Update each journey by Id; a participant without a journey yet is retried next run."""
        outcomes: list[Outcome] = []
        send: list[tuple[Change, str]] = []
        for change in changes:
            journey_id = self.journeys.get(change.key)
            if journey_id is None:
                outcomes.append(
                    Outcome.failed(change, "NO_JOURNEY", "Salesforce has no journey for this participant yet")
                )
            else:
                send.append((change, journey_id))
        if send:
            records = [{"Id": jid, **(c.payload or {})} for c, jid in send]
            results = self.aou.salesforce.update(self.aou.config.journey_object, records)
            for (change, journey_id), result in zip(send, results, strict=True):
                outcome = outcome_for(change, result)
                outcomes.append(replace(outcome, target_id=outcome.target_id or journey_id))
        return outcomes


def contact_pusher(run: SyncRun, engine: Engine) -> ContactPusher:
    """Factory for PushChangesOperator."""
    return ContactPusher(run, engine)


def journey_pusher(run: SyncRun, engine: Engine) -> JourneyPusher:
    """Factory for PushChangesOperator."""
    return JourneyPusher(run, engine)


# ---- journey relation --------------------------------------------------------------------------


def salesforce_relation(run: SyncRun) -> Iterator[tuple[str, str, str]]:
    """``(contact_id, pmi_id, journey_id)`` for every journey of a participant Contact."""
    aou = AouRun(run)
    contacts = {
        r["Id"]: str(r[KEY])
        for r in aou.salesforce.query(select(aou.config.contact_object, ["Id", KEY], where=_HAS_PMI))
    }
    soql = select(aou.config.journey_object, ["Id", "Contact__c"], where=fragment("Contact__c != null"))
    for journey in aou.salesforce.query(soql):
        pmi = contacts.get(journey["Contact__c"])
        if pmi is not None:
            yield journey["Contact__c"], pmi, journey["Id"]


def source_ready(run: SyncRun) -> tuple[bool, int, int]:
    """Whether today's source load looks complete: ``(ready, count, threshold)``."""
    aou = AouRun(run)
    day = run.window_end.date() if run.window_end else None
    count = source.readiness_count(aou.source, day=day)
    return count > aou.config.readiness_threshold, count, aou.config.readiness_threshold


__all__ = [
    "INTEGRATION",
    "KEY",
    "ContactPusher",
    "JourneyPusher",
    "aou_config",
    "claim_pardot_contacts",
    "contact_pusher",
    "contact_records",
    "contact_snapshot",
    "journey_pusher",
    "journey_records",
    "journey_snapshot",
    "salesforce_relation",
    "source_ready",
]


# ---- task bodies -------------------------------------------------------------------------------


def run_claim(run: SyncRun, engine: Engine) -> dict[str, Any]:
    """The ``claim_pardot_contacts`` task: decide and apply claims for this run's new Contacts."""
    from crm_sync.sync.diff import iter_changes
    from crm_sync.sync.ledger import apply_outcomes

    changes = [
        change
        for chunk in iter_changes(
            engine, run_id=run.run_id, integration=run.integration, entity="contact", actions=("create",)
        )
        for change in chunk
    ]
    if run.dry_run:
        aou = AouRun(run)
        participants = ({KEY: c.key, **(c.payload or {})} for c in changes)
        decisions = list(
            match_pardot(participants, pardot_contacts(aou), owner_ids=aou.config.pardot_owner_ids)
        )
        counts = {kind: sum(d.outcome == kind for d in decisions) for kind in ("claim", "ambiguous", "none")}
        log.info("dry run: Pardot claim would give %s", counts)
        return {"dry_run": True, "planned": counts, "api_calls": dict(aou.salesforce.api_calls)}
    outcomes, api_calls = claim_pardot_contacts(run, changes)
    apply_outcomes(
        engine, run_id=run.run_id, integration=run.integration, entity="contact", outcomes=outcomes
    )
    counts: dict[str, int] = {}
    for outcome in outcomes:
        label = f"{outcome.action}:{outcome.status}"
        counts[label] = counts.get(label, 0) + 1
    return {"outcomes": counts, "api_calls": api_calls}


def run_relation(run: SyncRun, engine: Engine) -> dict[str, int]:
    """The ``rebuild_journey_relation`` task: the relation table and the log views."""
    from crm_sync.integrations.aou.relation import create_log_views, rebuild_relation

    aou = AouRun(run)
    count = rebuild_relation(engine, salesforce_relation(run))
    create_log_views(engine)
    return {"relations": count, "api_calls": dict(aou.salesforce.api_calls)}

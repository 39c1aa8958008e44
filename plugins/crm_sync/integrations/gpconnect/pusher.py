"""Push staged rows: WhatsApp check, RapidPro contact by URN, flow start through the outbox.

Per chunk of rows: one WhatsApp contacts check (in batches); per row: look the contact up by
its ``tel`` URN, then its ``whatsapp`` URN; create it, or add missing URNs; then decide the
flow: ``new_contact`` for a created contact, ``contact_update`` only when the row differs from
the contact's fields, nothing otherwise. Starts are grouped by flow and identical params (a
start applies one params object to all its contacts, so rows only share a start when their
params are equal), at most 100 contacts each.

Flow starts are not idempotent. Each row claims an outbox key (import id + row + flow)
before its start and completes it after; a row whose entry is still ``pending`` (the answer
was lost, or the task died) is resolved by looking for the start in RapidPro (by op key or
by params fingerprint, for that contact, since the claim) before anything is started again.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from crm_sync.exceptions import RecordRejected, RetriableApiError
from crm_sync.hooks.rapidpro import (
    MAX_FLOW_START_CONTACTS,
    RapidProHook,
    order_urns,
    params_fingerprint,
    scrub,
)
from crm_sync.hooks.whatsapp import WhatsAppHook
from crm_sync.integrations.gpconnect.config import FLOW_TYPES
from crm_sync.integrations.gpconnect.rows import HAS_WHATSAPP
from crm_sync.integrations.gpconnect.transforms import differs
from crm_sync.sync.outbox import Outbox, OutboxEntry, OutboxState
from crm_sync.sync.records import Action, Change, Outcome, Status

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from crm_sync.integrations.gpconnect.config import GpConnectConfig, OrgConfig
    from crm_sync.operators.context import SyncRun

log = logging.getLogger(__name__)

ENTITY = "flow_start"
# How far before an outbox claim a start may be dated (clock skew between us and RapidPro).
_CLOCK_SKEW = timedelta(minutes=5)
_ACTIONS = {"new_contact": Action.CREATE, "contact_update": Action.UPDATE}


@dataclass
class _Start:
    """A row waiting for its flow start."""

    change: Change
    flow_type: str
    contact: str
    params: dict[str, Any]
    op_key: str
    claimed: bool = False


@dataclass
class _Chunk:
    outcomes: list[Outcome] = field(default_factory=list)
    starts: list[_Start] = field(default_factory=list)


class GpConnectPusher:
    """The :class:`~crm_sync.operators.push.Pusher` of the GP Connect rows."""

    def __init__(self, run: SyncRun, engine: Engine, config: GpConnectConfig, org: OrgConfig) -> None:
        self.run = run
        self.org = org
        self.rapidpro = RapidProHook(org.rapidpro_conn_id)
        self.whatsapp = WhatsAppHook(org.whatsapp_conn_id, batch_size=config.whatsapp_batch)
        self.flows = {flow_type: org.flow(flow_type) for flow_type in FLOW_TYPES}
        self.outbox = Outbox(engine, run.integration)
        self.engine = engine
        self.starts = 0

    @cached_property
    def types(self) -> dict[str, str]:
        """Contact field types by key (read on the first push: a run with no rows calls nothing)."""
        return {key: info.value_type for key, info in self.rapidpro.fields().items()}

    def op_key(self, row_key: str, flow_type: str) -> str:
        """The outbox key of a row's start (the row key carries the import id, hence the ETag)."""
        return Outbox.op_key(ENTITY, row_key, self.flows[flow_type])

    # ---- Pusher protocol ---------------------------------------------------------------------

    def push(self, changes: Sequence[Change]) -> list[Outcome]:
        """Check WhatsApp for the chunk, settle each row's contact, then start the flows."""
        checked = self.whatsapp.check_contacts([c.payload["phone"] for c in changes if c.payload])
        entries = self._entries(changes)
        chunk = _Chunk()
        for change in changes:
            try:
                self._row(change, checked, entries, chunk)
            except RecordRejected as exc:
                chunk.outcomes.append(Outcome.rejected(change, exc.code, exc.reason, field=exc.field))
            except RetriableApiError as exc:
                chunk.outcomes.append(Outcome.failed(change, _code(exc), scrub(str(exc))))
        self._start_all(chunk)
        return chunk.outcomes

    def api_calls(self) -> Mapping[str, int]:
        """Requests made to RapidPro and WhatsApp (flow starts counted apart)."""
        rapidpro = self.rapidpro.api_calls["total"]
        whatsapp = self.whatsapp.api_calls["total"]
        return {
            "rapidpro": rapidpro,
            "whatsapp": whatsapp,
            "flow_starts": self.starts,
            "total": rapidpro + whatsapp,
        }

    def budget_left(self) -> Mapping[str, int | None]:
        """The WhatsApp rate window left (RapidPro announces none: it answers 429)."""
        limit = self.whatsapp.rate_limit
        return {"whatsapp": getattr(limit, "remaining", None)}

    # ---- one row -----------------------------------------------------------------------------

    def _entries(self, changes: Sequence[Change]) -> dict[str, OutboxEntry]:
        """Outbox entries of the chunk's rows, by op key (one query)."""
        return self.outbox.entries([self.op_key(c.key, t) for c in changes for t in FLOW_TYPES])

    def _row(
        self,
        change: Change,
        checked: Mapping[str, Any],
        entries: Mapping[str, OutboxEntry],
        chunk: _Chunk,
    ) -> None:
        payload = change.payload or {}
        wa = checked.get(payload["phone"])
        params = {**payload["params"], HAS_WHATSAPP: bool(wa is not None and wa.on_whatsapp)}
        urns = [f"tel:{payload['phone']}"] + ([wa.urn] if wa is not None and wa.urn else [])
        contact = self.rapidpro.find_contact(urns)
        earlier = [
            (t, entries[self.op_key(change.key, t)])
            for t in FLOW_TYPES
            if self.op_key(change.key, t) in entries
        ]
        for flow_type, entry in earlier:
            if entry.state == OutboxState.DONE:
                # Started by an earlier try whose outcome was never recorded.
                target = contact.uuid if contact is not None else None
                chunk.outcomes.append(_ok(change, flow_type, target))
                return
            if contact is not None and entry.state == OutboxState.PENDING:
                found = self.rapidpro.find_flow_start(
                    self.flows[flow_type],
                    contact.uuid,
                    created_after=_aware(entry.created_at) - _CLOCK_SKEW,
                    op_key=entry.op_key,
                    fingerprint=params_fingerprint(params),
                )
                if found is not None:
                    self.outbox.complete(entry.op_key, found.uuid)
                    log.info(
                        "row %s: its %s start %s was made by an earlier try",
                        change.key,
                        flow_type,
                        found.uuid,
                    )
                    chunk.outcomes.append(_ok(change, flow_type, contact.uuid))
                    return
                # Never started: start it now, as the earlier try decided.
                chunk.starts.append(_Start(change, flow_type, contact.uuid, params, entry.op_key))
                return
        if contact is None:
            # Claim before creating: a try that dies after the create leaves a pending entry,
            # so the next one still starts new_contact (not contact_update) for this contact.
            op_key = self.op_key(change.key, "new_contact")
            self.outbox.claim(op_key, entity=ENTITY, record_key=change.key, run_id=self.run.run_id)
            try:
                created = self.rapidpro.create_contact(order_urns(urns))
            except RecordRejected as exc:
                self.outbox.fail(op_key, exc.code)  # nothing was started; a later try may retry
                raise
            chunk.starts.append(_Start(change, "new_contact", created.uuid, params, op_key, claimed=True))
            return
        missing = [urn for urn in urns if urn not in contact.urns]
        if missing:
            self.rapidpro.update_contact_urns(contact.uuid, order_urns([*contact.urns, *missing]))
        changed = differs(params, contact.fields, self.types)
        if not changed:
            chunk.outcomes.append(
                Outcome(
                    key=change.key,
                    action=Action.UNCHANGED,
                    status=Status.SKIPPED,
                    target_id=contact.uuid,
                    message="the contact's fields already match the row"
                    + ("; URNs added" if missing else ""),
                    row_hash=change.row_hash,
                )
            )
            return
        chunk.starts.append(
            _Start(change, "contact_update", contact.uuid, params, self.op_key(change.key, "contact_update"))
        )

    # ---- flow starts -------------------------------------------------------------------------

    def _start_all(self, chunk: _Chunk) -> None:
        groups: dict[tuple[str, str], list[_Start]] = defaultdict(list)
        for start in chunk.starts:
            groups[(start.flow_type, params_fingerprint(start.params))].append(start)
        for (flow_type, _), members in groups.items():
            for first in range(0, len(members), MAX_FLOW_START_CONTACTS):
                self._start(flow_type, members[first : first + MAX_FLOW_START_CONTACTS], chunk)

    def _start(self, flow_type: str, members: list[_Start], chunk: _Chunk) -> None:
        unclaimed = [(m.op_key, m.change.key) for m in members if not m.claimed]
        self.outbox.claim_many(unclaimed, entity=ENTITY, run_id=self.run.run_id)
        # One op key tags the start: the row's own for a single row, else the group's.
        tag = members[0].op_key if len(members) == 1 else Outbox.op_key(*(m.op_key for m in members))
        try:
            started = self.rapidpro.start_flow(
                self.flows[flow_type],
                contacts=[m.contact for m in members],
                params=members[0].params,
                op_key=tag,
            )
        except RecordRejected as exc:
            self.outbox.fail_many([m.op_key for m in members], exc.code)
            for member in members:
                rejected = Outcome.rejected(member.change, exc.code, exc.reason, field=exc.field)
                chunk.outcomes.append(_as(rejected, flow_type, member.contact))
            return
        except RetriableApiError as exc:
            # It may have reached RapidPro: the entries stay pending and the next try looks first.
            for member in members:
                failed = Outcome.failed(member.change, "FLOW_START_UNCONFIRMED", scrub(str(exc)))
                chunk.outcomes.append(_as(failed, flow_type, member.contact))
            return
        self.starts += 1
        self.outbox.complete_many([m.op_key for m in members], started.uuid)
        for member in members:
            chunk.outcomes.append(_ok(member.change, flow_type, member.contact))


def _ok(change: Change, flow_type: str, contact: str | None) -> Outcome:
    return _as(Outcome.ok(change), flow_type, contact)


def _as(outcome: Outcome, flow_type: str, contact: str | None) -> Outcome:
    """The outcome under the action of its flow (new_contact: create, contact_update: update)."""
    return replace(outcome, action=_ACTIONS[flow_type], target_id=contact)


def _aware(value: datetime) -> datetime:
    # SQLite hands timestamps back without their zone; they are written in UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _code(exc: RetriableApiError) -> str:
    if exc.code:
        return str(exc.code)
    return f"HTTP_{exc.status}" if exc.status else "UNAVAILABLE"

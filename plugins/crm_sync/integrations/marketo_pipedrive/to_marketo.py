"""The steps every Pipedrive -> Marketo batch shares: skip echoes, map, match, write, write back.

A batch holds up to 300 Pipedrive records (Marketo's batch size). Each record becomes a
:class:`Pending`; each step fills it in or gives it its final result (echo, rejected on a
mapping problem naming the field, parked when a quota runs out, or the Marketo answer), so
one bad record never stops the others. persons.py and organizations.py put the steps
together with their entity's rules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
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
    ok,
    parked,
    rejected,
)
from crm_sync.sync.mapping import FieldMapping
from crm_sync.sync.records import Action, Status

if TYPE_CHECKING:
    from crm_sync.integrations.marketo_pipedrive.entities import EntitySync

__all__ = ["Pending", "batches", "match", "prepare", "send", "write_back"]

Write = Callable[[list[dict[str, Any]], list[str]], list[MarketoResult]]
"""Sends records to Marketo with their keys; one answer per record, in order."""


@dataclass
class Pending:
    """One Pipedrive record on its way to Marketo."""

    record: PipedriveRecord
    key: str
    flat: dict[str, Any] = field(default_factory=dict)
    payload: dict[str, Any] = field(default_factory=dict)
    match: Match[dict[str, Any]] = field(default_factory=lambda: Match(None))
    target: dict[str, Any] = field(default_factory=dict)
    """The Marketo record as it stands: the match, or ``{"id": ...}`` of one just created."""
    conflicts: list[Conflict] = field(default_factory=list)
    result: Synced | None = None

    def fail(self, action: Action, exc: RecordRejected | QuotaExhausted) -> None:
        """Bad data rejects this record (naming the field); a spent quota parks it."""
        self.result = (
            rejected(self.key, action, exc)
            if isinstance(exc, RecordRejected)
            else parked(self.key, action, exc)
        )

    @property
    def written(self) -> bool:
        """Whether Marketo holds the record now (written or already equal)."""
        outcome = self.result.outcome if self.result else None
        return outcome is not None and (
            outcome.status is Status.SUCCESS or outcome.action is Action.UNCHANGED
        )


def batches(records: Sequence[PipedriveRecord], entity: str) -> Iterator[list[Pending]]:
    """The records as :class:`Pending` items, 300 at a time (key ``<entity>:<id>``)."""
    for start in range(0, len(records), MAX_BATCH):
        yield [Pending(r, f"{entity}:{r.id}") for r in records[start : start + MAX_BATCH]]


def prepare(
    sync: EntitySync,
    items: Sequence[Pending],
    *,
    entity: str,
    snapshot: Callable[[PipedriveRecord], Mapping[str, Any]],
    flat: Callable[[PipedriveRecord], dict[str, Any]],
    mapping: FieldMapping,
) -> list[Pending]:
    """Skip each echo of this sync's own write; flatten and map the others. Returns those still live."""
    live: list[Pending] = []
    for item in items:
        if sync.memory and sync.memory.is_echo(entity, item.record.id, snapshot(item.record)):
            item.result = echo(item.key)
            continue
        try:
            item.flat = flat(item.record)
            item.payload = sync.apply_mapping(mapping, item.flat, item.key)
        except (RecordRejected, QuotaExhausted) as exc:
            item.fail(Action.UPDATE, exc)
            continue
        live.append(item)
    return live


def match(
    items: Sequence[Pending], find: Callable[[list[dict[str, Any]]], Mapping[int, Match[dict[str, Any]]]]
) -> bool:
    """Find every item's Marketo record with ``find`` (batched reads); False when none is left to write."""
    if not items:
        return False
    try:
        found = find([item.flat for item in items])
    except QuotaExhausted as exc:
        for item in items:
            item.fail(Action.UPDATE, exc)
        return False
    for item in items:
        item.match = found.get(item.record.id, Match(None))
        item.target = dict(item.match.record or {})
    return True


def send(
    todo: Sequence[tuple[Pending, dict[str, Any], dict[str, Any]]], write: Write, *, create: bool
) -> None:
    """Send ``(item, body, written)`` in one batched write; each item gets Marketo's answer.

    ``written`` is what the ledger and the memory record as sent (the diff of an update).
    """
    if not todo:
        return
    answers = write([body for _, body, _ in todo], [item.key for item, _, _ in todo])
    for (item, _, written), answer in zip(todo, answers, strict=True):
        action = Action.CREATE if create else Action.UPDATE
        if not answer.success:
            item.result = marketo_failure(item.key, action, answer)
            continue
        if create:
            item.target = {"id": int(answer.id or 0)}
            action = Action.CREATE if answer.status == "created" else Action.UPDATE
        item.result = ok(item.key, action, item.target["id"], written, item.match.step)


def write_back(sync: EntitySync, item: Pending, plural: str) -> PipedriveRecord | None:
    """Write the Marketo id on the Pipedrive record as ``marketoid`` where it differs.

    Returns the record as it stands, or None when Pipedrive refused (the item's result says why).
    """
    assert item.result is not None
    target_id = str(item.target["id"])
    if str(item.flat.get("marketoid") or "") == target_id:
        return item.record
    body = to_body(plural, {"marketoid": target_id}, sync.fields(plural))
    try:
        return sync.pipedrive.update(plural, item.record.id, body, key=item.key)
    except (RecordRejected, QuotaExhausted) as exc:
        item.fail(item.result.outcome.action, exc)
        return None

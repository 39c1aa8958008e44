"""What syncing one entity gave: the engine outcome, what was written, and the helpers that build it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from crm_sync.exceptions import QuotaExhausted, RecordRejected
from crm_sync.hooks.marketo import MarketoResult
from crm_sync.sync.adapters import is_blank
from crm_sync.sync.records import Action, Outcome, Status
from crm_sync.timestamps import parse_instant

__all__ = [
    "Synced",
    "echo",
    "marketo_failure",
    "moment",
    "non_blank",
    "ok",
    "parked",
    "rejected",
    "unchanged",
]


@dataclass(frozen=True)
class Synced:
    """The outcome of one entity and what this sync wrote (target field -> value)."""

    outcome: Outcome
    written: dict[str, Any] = field(default_factory=dict)
    step: str | None = None
    """The matching step that found the target (None: created or not matched)."""

    @property
    def status(self) -> str:
        """``created``, ``updated``, ``skipped``, or the engine status of a failure."""
        if self.outcome.status is Status.SUCCESS:
            return {Action.CREATE: "created", Action.UPDATE: "updated", Action.DELETE: "deleted"}.get(
                self.outcome.action, "skipped"
            )
        return "skipped" if self.outcome.status is Status.SKIPPED else self.outcome.status.value


def ok(key: str, action: Action, target_id: Any, written: Mapping[str, Any], step: str | None) -> Synced:
    """A write that went through: ``written`` holds the target fields sent."""
    outcome = Outcome(key=key, action=action, status=Status.SUCCESS, target_id=str(target_id))
    return Synced(outcome, dict(written), step)


def unchanged(key: str, target_id: Any, step: str | None) -> Synced:
    """The target already holds every value: nothing was written."""
    outcome = Outcome(key=key, action=Action.UNCHANGED, status=Status.SKIPPED, target_id=str(target_id))
    return Synced(outcome, {}, step)


def marketo_failure(key: str, action: Action, result: MarketoResult, *, field: str | None = None) -> Synced:
    """A Marketo write that did not apply: parked (quota), failed (transient) or rejected.

    ``field`` names the one field the write carried (a cross-id write-back).
    """
    status = {"parked": Status.PARKED, "failed": Status.FAILED}.get(result.status, Status.REJECTED)
    message = result.message if field is None else f"writing {field} failed: {result.message}"
    outcome = Outcome(
        key=key,
        action=action,
        status=status,
        error_code=result.error_code or "SKIPPED",
        message=message,
        field=field,
    )
    return Synced(outcome)


def rejected(key: str, action: Action, exc: RecordRejected) -> Synced:
    """Bad data: the rejection names the record and the field."""
    outcome = Outcome(
        key=key,
        action=action,
        status=Status.REJECTED,
        error_code=exc.code,
        message=str(exc),
        field=exc.field,
    )
    return Synced(outcome)


def parked(key: str, action: Action, exc: QuotaExhausted) -> Synced:
    """The daily quota ran out (on a read or a write): the record waits for the reset."""
    outcome = Outcome(
        key=key, action=action, status=Status.PARKED, error_code="QUOTA_EXHAUSTED", message=str(exc)
    )
    return Synced(outcome)


def non_blank(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The payload without empty values (a create never sends a blank)."""
    return {k: v for k, v in payload.items() if not is_blank(v)}


def echo(key: str, target_id: Any = None) -> Synced:
    """A change that only reflects this sync's own write: nothing to send back."""
    outcome = Outcome(
        key=key,
        action=Action.UNCHANGED,
        status=Status.SKIPPED,
        target_id=None if target_id is None else str(target_id),
        error_code="ECHO",
        message="the change only reflects what this sync wrote",
    )
    return Synced(outcome)


def moment(value: Any) -> datetime | None:
    """A Marketo ``updatedAt`` (ISO 8601, ``Z``) as an aware datetime; None when blank or invalid."""
    return parse_instant(value)

"""The record model: what is staged, what the push step receives and what a hook returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = ["Action", "Change", "Outcome", "Record", "Status"]


class Action(StrEnum):
    """What the diff decided for one record."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    UNCHANGED = "unchanged"
    SKIP = "skip"
    CLAIM = "claim"
    """An existing target record was taken over instead of creating a new one (a match)."""


class Status(StrEnum):
    """How the push of one record ended."""

    SUCCESS = "success"
    REJECTED = "rejected"
    SKIPPED = "skipped"
    FAILED = "failed"
    """Transient failure: the state is untouched, so the next run retries the record."""
    PARKED = "parked"
    """Not attempted because an API quota ran out; retried after the reset."""


@dataclass(frozen=True, slots=True)
class Record:
    """One source record, keyed by its stable business key."""

    key: str
    payload: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Change:
    """One record to push: what to do, the mapped payload and the known target id.

    ``payload`` and ``row_hash`` are None for deletes; ``target_id`` is None for creates.
    """

    key: str
    action: Action
    payload: dict[str, Any] | None
    row_hash: str | None
    target_id: str | None


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of pushing one record, as returned by a target hook."""

    key: str
    action: Action
    status: Status
    target_id: str | None = None
    error_code: str | None = None
    message: str | None = None
    field: str | None = None
    row_hash: str | None = None

    @classmethod
    def ok(cls, change: Change, target_id: str | None = None) -> Outcome:
        """Build a success for ``change``; ``target_id`` defaults to the change's own."""
        return cls(
            key=change.key,
            action=change.action,
            status=Status.SUCCESS,
            target_id=target_id if target_id is not None else change.target_id,
            row_hash=change.row_hash,
        )

    @classmethod
    def rejected(cls, change: Change, code: str, message: str, field: str | None = None) -> Outcome:
        """Build a permanent per-record rejection (the API's own error code in ``code``)."""
        return cls(
            key=change.key,
            action=change.action,
            status=Status.REJECTED,
            target_id=change.target_id,
            error_code=code,
            message=message,
            field=field,
            row_hash=change.row_hash,
        )

    @classmethod
    def failed(cls, change: Change, code: str, message: str | None = None) -> Outcome:
        """Build a transient failure: the record keeps its old state and is retried next run."""
        return cls(
            key=change.key,
            action=change.action,
            status=Status.FAILED,
            target_id=change.target_id,
            error_code=code,
            message=message,
            row_hash=change.row_hash,
        )

    @classmethod
    def parked(cls, change: Change, code: str = "QUOTA_EXHAUSTED", message: str | None = None) -> Outcome:
        """Build an outcome for a record left unpushed because an API quota ran out."""
        return cls(
            key=change.key,
            action=change.action,
            status=Status.PARKED,
            target_id=change.target_id,
            error_code=code,
            message=message,
            row_hash=change.row_hash,
        )

    @classmethod
    def skipped(cls, change: Change, code: str | None = None, message: str | None = None) -> Outcome:
        """Build an outcome for a record the hook chose not to write (nothing to do)."""
        return cls(
            key=change.key,
            action=change.action,
            status=Status.SKIPPED,
            target_id=change.target_id,
            error_code=code,
            message=message,
            row_hash=change.row_hash,
        )

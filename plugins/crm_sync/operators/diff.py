"""Diff: decide create / update / delete / unchanged for every staged record, in SQL."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from crm_sync.operators.base import SyncStepOperator
from crm_sync.operators.context import SyncRun
from crm_sync.sync.diff import compute_diff, stage_snapshot

Snapshot = Callable[[SyncRun], Iterable[tuple[str, str, str | None]]]
"""Yields ``(key, row_hash, target_id)`` for every record the target holds now."""


class DiffRecordsOperator(SyncStepOperator):
    """Diff staged rows against the sync state, or against a fresh target snapshot.

    A ``full_refresh`` run with a ``snapshot`` reads the target first and diffs against it,
    so edits made by hand in the target are repaired. A run whose ``keys_param`` Param (or
    the ``keys`` Param every crm_sync DAG offers, used by the dashboard's "retry these")
    holds keys diffs only those keys and never infers deletes.

    Args:
        snapshot: reads the target for full_refresh runs; None means the state is the baseline.
        detect_deletes: whether keys missing from this run's staging become deletes.
        keys_param: name of a Param holding a list of keys to re-sync (e.g. ``pmi_ids``).
        max_delete_ratio: refuse a diff that would delete more than this share of the state
            (a half-loaded source must not wipe the target).
    """

    def __init__(
        self,
        *,
        snapshot: Snapshot | None = None,
        detect_deletes: bool = True,
        keys_param: str | None = None,
        max_delete_ratio: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.snapshot = snapshot
        self.detect_deletes = detect_deletes
        self.keys_param = keys_param
        self.max_delete_ratio = max_delete_ratio

    def execute(self, context: Any) -> dict[str, int]:
        """Compute the diff and return its counts."""
        run = self.sync_run(context)
        engine = self.staging_engine()
        against = "state"
        if run.full_refresh and self.snapshot is not None:
            stored = stage_snapshot(
                engine,
                run_id=run.run_id,
                integration=run.integration,
                entity=self.entity,
                rows=self.snapshot(run),
            )
            self.log.info("full refresh: diffing against a fresh snapshot of %d target records", stored)
            against = "snapshot"
        keys = run.requested_keys(self.keys_param)
        counts = compute_diff(
            engine,
            run_id=run.run_id,
            integration=run.integration,
            entity=self.entity,
            against=against,
            detect_deletes=self.detect_deletes and not keys,
            keys=keys or None,
            max_delete_ratio=self.max_delete_ratio,
        )
        self.log.info("%s %s diff: %s", run.integration, self.entity, counts.as_dict())
        return counts.as_dict()

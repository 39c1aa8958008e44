"""Stage: stream this run's source records into the staging database."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from crm_sync.exceptions import RecordRejected
from crm_sync.operators.base import SyncStepOperator
from crm_sync.operators.context import SyncRun
from crm_sync.sync.progress import Progress
from crm_sync.sync.quarantine import quarantine_rejections, split_rejections
from crm_sync.sync.staging import stage_records

Extract = Callable[[SyncRun], Iterable[Mapping[str, Any] | RecordRejected]]
"""Yields the run's source records (dicts keyed by field name), read lazily, once; a row
it cannot shape is yielded as a RecordRejected, which is quarantined."""


class StageRecordsOperator(SyncStepOperator):
    """Stage the records an extract yields; bad records are quarantined, not fatal.

    Args:
        extract: called with the :class:`SyncRun`; returns an iterable of records.
        key_field: the field that identifies a record across runs.
        chunk_size: records per staging transaction.
    """

    def __init__(self, *, extract: Extract, key_field: str, chunk_size: int = 5000, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not callable(extract):
            raise TypeError("extract must be callable")
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        self.extract = extract
        self.key_field = key_field
        self.chunk_size = chunk_size

    def execute(self, context: Any) -> dict[str, int]:
        """Stage and return the counts (XCom carries counts only)."""
        run = self.sync_run(context)
        engine = self.staging_engine()
        run.record_start(engine)
        progress = Progress(None, f"{run.integration}: stage {self.entity}", logger=self.log)
        shaping_errors: list[RecordRejected] = []
        result = stage_records(
            engine,
            run_id=run.run_id,
            integration=run.integration,
            entity=self.entity,
            records=split_rejections(self.extract(run), shaping_errors),
            key_field=self.key_field,
            chunk_size=self.chunk_size,
            progress=progress,
        )
        progress.finish()
        quarantine_rejections(
            engine,
            run_id=run.run_id,
            integration=run.integration,
            entity=self.entity,
            problems=shaping_errors,
        )
        for error in [*shaping_errors[:20], *result.errors[:20]]:
            self.log.warning("quarantined: %s", error)
        quarantined = result.rejected + len(shaping_errors)
        if quarantined > 40:
            self.log.warning("... %d quarantined records in all (table quarantine)", quarantined)
        return {"staged": result.staged, "quarantined": quarantined}

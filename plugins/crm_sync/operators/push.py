"""Push: send the run's changes to the target, record one outcome per record."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import sqlalchemy as sa

from crm_sync.exceptions import QuotaExhausted
from crm_sync.operators.base import SyncStepOperator
from crm_sync.operators.context import SyncRun
from crm_sync.sync.diff import iter_changes
from crm_sync.sync.ledger import apply_outcomes
from crm_sync.sync.progress import Progress
from crm_sync.sync.quarantine import keys_with_final_outcome
from crm_sync.sync.records import Action, Change, Outcome, Status
from crm_sync.sync.schema import staged_record

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

SAMPLE_KEYS = 20


class Pusher(Protocol):
    """Writes changes to one target and says what happened to each."""

    def push(self, changes: Sequence[Change]) -> list[Outcome]:
        """Write ``changes``; return one outcome per change (any order)."""
        ...

    def api_calls(self) -> Mapping[str, int]:
        """API calls made so far, by kind."""
        ...

    def budget_left(self) -> Mapping[str, int | None]:
        """What is left of each API budget (None: unlimited or unknown)."""
        ...


PusherFactory = Callable[[SyncRun, "Engine"], Pusher]


class PushChangesOperator(SyncStepOperator):
    """Push the diff's changes in chunks; every outcome lands in the ledger with the state.

    A retried try resumes: keys that already have a final outcome in this run are not sent
    again. When an API budget runs out the rest of the changes are parked (state untouched),
    so the next run sends them; the task itself succeeds. Auth, configuration and other
    fatal errors fail the task.

    Args:
        pusher: builds the target writer for this run (hooks are built in the worker).
        actions: which actions to push (e.g. journeys only update).
        chunk_size: changes per push call and per ledger transaction.
    """

    def __init__(
        self,
        *,
        pusher: PusherFactory,
        actions: Sequence[str] = ("create", "update", "delete"),
        chunk_size: int = 2000,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not callable(pusher):
            raise TypeError("pusher must be callable")
        self.pusher = pusher
        self.actions = tuple(Action(a).value for a in actions)
        self.chunk_size = chunk_size

    def execute(self, context: Any) -> dict[str, Any]:
        """Push and return outcome counts, API calls and budget left."""
        run = self.sync_run(context)
        engine = self.staging_engine()
        planned = _count_changes(engine, run, self.entity, self.actions)
        if run.dry_run:
            return self._dry_run(engine, run, planned)
        pusher = self.pusher(run, engine)
        progress = Progress(
            sum(planned.values()),
            f"{run.integration}: push {self.entity}",
            logger=self.log,
            extra=lambda: f"budget left {dict(pusher.budget_left())}",
        )
        totals: Counter[str] = Counter()
        parked = False
        for chunk in iter_changes(
            engine,
            run_id=run.run_id,
            integration=run.integration,
            entity=self.entity,
            actions=self.actions,
            chunk_size=self.chunk_size,
        ):
            done = keys_with_final_outcome(
                engine,
                run_id=run.run_id,
                integration=run.integration,
                entity=self.entity,
                keys=[c.key for c in chunk],
            )
            read = len(chunk)
            chunk = [c for c in chunk if c.key not in done]  # a retried try (or a claim) did these
            if not chunk:
                progress.advance(read)
                continue
            if parked:
                outcomes = [Outcome.parked(change) for change in chunk]
            else:
                try:
                    outcomes = pusher.push(chunk)
                except QuotaExhausted as exc:
                    self.log.warning("%s budget spent (%s): parking the remaining changes", exc.api, exc)
                    outcomes = [Outcome.parked(change, message=str(exc)) for change in chunk]
            outcomes = _one_per_change(chunk, outcomes, self.log)
            parked = parked or any(o.status == Status.PARKED for o in outcomes)
            apply_outcomes(
                engine, run_id=run.run_id, integration=run.integration, entity=self.entity, outcomes=outcomes
            )
            totals.update(f"{o.action}:{o.status}" for o in outcomes)
            progress.advance(read)
        progress.finish()
        return {
            "entity": self.entity,
            "planned": planned,
            "outcomes": dict(totals),
            "api_calls": dict(pusher.api_calls()),
            "budget_left": dict(pusher.budget_left()),
            "parked": parked,
        }

    def _dry_run(self, engine: Engine, run: SyncRun, planned: dict[str, int]) -> dict[str, Any]:
        samples: dict[str, list[str]] = {}
        for chunk in iter_changes(
            engine, run_id=run.run_id, integration=run.integration, entity=self.entity, actions=self.actions
        ):
            for change in chunk:
                keys = samples.setdefault(change.action, [])
                if len(keys) < SAMPLE_KEYS:
                    keys.append(change.key)
        for action, count in planned.items():
            self.log.info(
                "dry run: would %s %d %s records, e.g. %s", action, count, self.entity, samples.get(action)
            )
        return {"entity": self.entity, "planned": planned, "dry_run": True, "samples": samples}


def _count_changes(engine: Engine, run: SyncRun, entity: str, actions: Sequence[str]) -> dict[str, int]:
    query = (
        sa.select(staged_record.c.action, sa.func.count())
        .where(
            staged_record.c.run_id == run.run_id,
            staged_record.c.integration == run.integration,
            staged_record.c.entity == entity,
            staged_record.c.action.in_(actions),
        )
        .group_by(staged_record.c.action)
    )
    with engine.connect() as conn:
        return {action: int(n) for action, n in conn.execute(query)}


def _one_per_change(chunk: Sequence[Change], outcomes: Sequence[Outcome], log: Any) -> list[Outcome]:
    """Return exactly one outcome per change: a change the pusher did not report is ``failed``.

    A pusher that loses track of a record must not lose the record: the state stays as it
    was, so the next run retries it.
    """
    by_key = {o.key: o for o in outcomes}
    complete = []
    for change in chunk:
        outcome = by_key.pop(change.key, None)
        if outcome is None:
            outcome = Outcome.failed(
                change, "NO_OUTCOME", "the target hook reported no outcome for this record"
            )
        complete.append(outcome)
    if by_key:
        log.warning("the target hook reported %d outcomes for keys it was not sent", len(by_key))
    return complete

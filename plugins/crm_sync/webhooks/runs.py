"""Queue a DAG run for a webhook event unless the same run is already waiting.

The original's queue kept an ``EnqueuedTask(name, params)`` per pending task and answered
"Task already enqueued." for an identical one (seed 001). Here the pending tasks are the
DAG's *queued* runs: one whose conf asks for the same thing makes a new event redundant. A
running run is not a duplicate (it may have read the record before this change), so the
event queues one more run; the DAG's ``max_active_runs=1`` runs them one at a time.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from crm_sync.dashboard.airflow_meta import trigger

__all__ = ["enqueue", "pending_run"]

# One check-then-trigger at a time in this API server process (two identical deliveries
# arriving together must not both see "nothing pending"). With several API server workers,
# two identical events in the same instant may still both queue: the second run then finds
# nothing to write (no echo, an unchanged record), which costs reads, not correctness.
_LOCK = threading.Lock()


def pending_run(dag_id: str, conf: Mapping[str, Any]) -> str | None:
    """The run id of a queued run of ``dag_id`` whose conf holds every item of ``conf``, or None."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState

    with create_session() as session:
        queued = (
            session.query(DagRun.run_id, DagRun.conf)
            .filter(DagRun.dag_id == dag_id, DagRun.state == DagRunState.QUEUED)
            .all()
        )
    for run_id, run_conf in queued:
        if all((run_conf or {}).get(name) == value for name, value in conf.items()):
            return str(run_id)
    return None


def enqueue(dag_id: str, conf: dict[str, Any], *, user_name: str) -> tuple[str, bool]:
    """Trigger a run of ``dag_id`` with ``conf`` unless an identical one is queued.

    Returns:
        ``(run_id, created)``: the new run, or the queued duplicate with ``created`` False.
    """
    with _LOCK:
        existing = pending_run(dag_id, conf)
        if existing is not None:
            return existing, False
        return trigger(dag_id, conf=conf, user_name=user_name), True

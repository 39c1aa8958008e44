"""Report: close the run in ``sync_run`` and fail it when too many records were rejected."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from crm_sync.exceptions import FatalError
from crm_sync.operators.base import SyncStepOperator
from crm_sync.sync.ledger import check_reject_ratio, finish_run


class ReportSyncOperator(SyncStepOperator):
    """Write the run summary (counts, top errors, API calls, budget left) and return it.

    Runs whatever happened upstream (trigger rule ``all_done``), so a failed push still gets
    its summary; the task then fails when an upstream task failed or when rejected records
    exceed ``max_reject_ratio``.

    Args:
        push_task_ids: the push tasks whose API calls and budgets are added up.
        max_reject_ratio: the highest share of rejected records a successful run may have.
    """

    def __init__(
        self,
        *,
        push_task_ids: Sequence[str] = (),
        max_reject_ratio: float = 0.05,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        kwargs.setdefault("entity", "*")
        super().__init__(**kwargs)
        if not 0 <= max_reject_ratio <= 1:
            raise ValueError("max_reject_ratio must be between 0 and 1")
        self.push_task_ids = list(push_task_ids)
        self.max_reject_ratio = max_reject_ratio

    def execute(self, context: Any) -> dict[str, Any]:
        """Finish the run and return its summary (small: counts and keys, no field values)."""
        run = self.sync_run(context)
        api_calls: Counter[str] = Counter()
        budget_left: dict[str, Any] = {}
        for result in _pushed(context, self.push_task_ids):
            api_calls.update(result.get("api_calls") or {})
            budget_left.update(result.get("budget_left") or {})
        failed_upstream = _failed_upstream(context)
        state = "failed" if failed_upstream else ("dry_run" if run.dry_run else "success")
        summary = finish_run(
            self.staging_engine(),
            integration=run.integration,
            run_id=run.run_id,
            state=state,
            api_calls=dict(api_calls),
            budget_left=budget_left,
            error=f"failed tasks: {', '.join(failed_upstream)}" if failed_upstream else None,
        )
        self.log.info(
            "%s run %s: planned %s, outcomes %s, quarantined %d, API calls %s, budget left %s",
            run.integration,
            run.run_id,
            summary["planned"],
            summary["outcomes"],
            summary["quarantined"],
            summary["api_calls"],
            summary["budget_left"],
        )
        for error in summary["errors"]:
            self.log.warning("error %s x%d, e.g. %s", error["code"], error["count"], error["sample_keys"])
        if failed_upstream:
            raise AirflowFailException(f"upstream tasks failed: {', '.join(failed_upstream)}")
        try:
            check_reject_ratio(summary, self.max_reject_ratio)
        except FatalError as exc:
            # Retrying the report cannot change the ratio: fail without retries.
            raise AirflowFailException(str(exc)) from exc
        return summary


def _pushed(context: Mapping[str, Any], task_ids: Sequence[str]) -> list[Mapping[str, Any]]:
    if not task_ids:
        return []
    results = context["ti"].xcom_pull(task_ids=list(task_ids))
    if isinstance(results, Mapping):
        results = [results]
    return [r for r in results or [] if isinstance(r, Mapping)]


def _failed_upstream(context: Mapping[str, Any]) -> list[str]:
    """Task ids of this run's upstream tasks that ended failed or upstream_failed."""
    ti = context["ti"]
    dag_run = context["dag_run"]
    upstream = context["task"].upstream_task_ids
    if not upstream:
        return []
    states = ti.get_task_states(dag_id=dag_run.dag_id, run_ids=[dag_run.run_id], task_ids=sorted(upstream))
    by_task = (states or {}).get(dag_run.run_id, {})
    return sorted(task_id for task_id, state in by_task.items() if state in {"failed", "upstream_failed"})

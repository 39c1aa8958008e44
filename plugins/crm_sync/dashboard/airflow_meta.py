"""What the dashboard reads from Airflow itself: step durations, DAG Params, triggering a run.

These run inside the API server (the plugin's FastAPI app), next to Airflow's metadata
database; a plain ``def`` route runs them in FastAPI's thread pool.
"""

from __future__ import annotations

from typing import Any

__all__ = ["dag_params", "step_durations", "trigger"]


def step_durations(dag_id: str | None, run_id: str) -> list[dict[str, Any]]:
    """Return each task of a DAG run with its state, try number and duration, in start order."""
    if not dag_id:
        return []
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = (
            session.query(TaskInstance)
            .filter(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
            .all()
        )
        steps = [
            {
                "task_id": ti.task_id,
                "map_index": ti.map_index,
                "state": str(ti.state) if ti.state else None,
                "try_number": ti.try_number,
                "started_at": ti.start_date.isoformat() if ti.start_date else None,
                "duration_s": round(ti.duration, 1) if ti.duration is not None else None,
            }
            for ti in tis
        ]
    return sorted(steps, key=lambda s: (s["started_at"] or "~", s["task_id"], s["map_index"]))


def dag_params(dag_id: str) -> dict[str, Any] | None:
    """Return the Params of the DAG as last parsed (None when Airflow does not know the DAG)."""
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.utils.session import create_session

    with create_session() as session:
        dag = SerializedDagModel.get_dag(dag_id, session=session)
        if dag is None:
            return None
        return dict(dag.params.dump()) if hasattr(dag.params, "dump") else dict(dag.params)


def trigger(dag_id: str, *, conf: dict[str, Any], user_name: str) -> str:
    """Queue a manual run of ``dag_id`` with ``conf`` as ``user_name``; return its run id.

    Uses ``airflow.api.common.trigger_dag`` (what Airflow's execution API calls), pinned by
    tests/dashboard: it does not validate Params, so callers validate ``conf`` themselves.
    """
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.utils.types import DagRunTriggeredByType, DagRunType

    dag_run = trigger_dag(
        dag_id=dag_id,
        conf=conf,
        run_type=DagRunType.MANUAL,
        triggered_by=DagRunTriggeredByType.UI,
        triggering_user_name=user_name,
    )
    if dag_run is None:
        raise RuntimeError(f"Airflow created no run for {dag_id}")
    return dag_run.run_id

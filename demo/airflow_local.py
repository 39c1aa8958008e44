"""A local Airflow for the demo and the tests: environment, metadata database, ``dag.test()``.

Airflow reads its configuration when first imported, so :func:`configure` must run before
anything imports ``airflow``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def configure(home: Path, *, quiet: bool = False) -> None:
    """Point Airflow at ``home`` (SQLite metadata DB) and at this project's dags and plugins."""
    home.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(ROOT / "plugins"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
    )
    if quiet:
        os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"


def reset_metadata_db() -> None:
    """Create (or recreate) Airflow's metadata database."""
    from airflow.utils import db

    db.resetdb()


def load_dag(dag_id: str) -> Any:
    """The DAG object parsed from dags/<dag_id>.py (no metadata database read)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags" / f"{dag_id}.py"), bundle_name="dags-folder")
    if bag.import_errors:
        raise RuntimeError(f"{dag_id} does not import: {bag.import_errors}")
    return bag.dags[dag_id]


def run_dag(
    dag_id: str, *, logical_date: datetime, conf: Mapping[str, Any] | None = None, retries: int | None = None
) -> Any:
    """Run every task of the DAG in this process with ``dag.test()``; return the DagRun.

    ``dag.test()`` honours retry delays; pass ``retries=0`` to see a failure at once instead
    of after minutes of backoff.
    """
    dag = load_dag(dag_id)
    if retries is not None:
        for task in dag.tasks:
            task.retries = retries
            if hasattr(task, "poke_interval"):
                # A sensor would otherwise reschedule for its production poke interval.
                task.poke_interval, task.timeout = 1, 30
    return dag.test(logical_date=logical_date, run_conf=dict(conf or {}))


def task_states(dag_run: Any) -> dict[str, str]:
    """Task id -> final state of a DagRun."""
    from airflow.settings import Session

    with Session() as session:
        return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances(session=session)}


def xcom(dag_run: Any, task_id: str) -> Any:
    """The return value a task of ``dag_run`` pushed, or None."""
    from airflow.models.xcom import XComModel
    from airflow.settings import Session

    with Session() as session:
        row = (
            session.query(XComModel)
            .filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id, task_id=task_id, key="return_value")
            .one_or_none()
        )
        if row is None:
            return None
        value = row.value
        return json.loads(value) if isinstance(value, str | bytes) else value


def run_succeeding(
    dag_id: str, label: str, *, logical_date: datetime, conf: Mapping[str, Any] | None = None
) -> tuple[Any, float]:
    """Run a DAG once for the demo: the DagRun and its wall seconds; exit naming failed tasks."""
    started = time.perf_counter()
    dag_run = run_dag(dag_id, logical_date=logical_date, conf=conf, retries=0)
    seconds = time.perf_counter() - started
    if str(dag_run.state) != "success":
        failed = {t: s for t, s in task_states(dag_run).items() if s != "success"}
        raise SystemExit(f"{dag_id} run {label!r} ended {dag_run.state}: {failed}")
    return dag_run, seconds

"""Run DAGs for real in tests: a migrated Airflow database and ``dag.test()``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from demo.airflow_local import load_dag, reset_metadata_db, task_states, xcom
from demo.airflow_local import run_dag as _run_dag

__all__ = ["airflow_db", "load_dag", "run_dag", "task_states", "xcom"]


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """Create Airflow's metadata database (SQLite in the test AIRFLOW_HOME) once per session."""
    reset_metadata_db()


def run_dag(
    dag_id: str, *, logical_date: datetime, conf: dict[str, Any] | None = None, retries: int = 0
) -> Any:
    """``demo.airflow_local.run_dag`` with no task retries unless a test is about them."""
    return _run_dag(dag_id, logical_date=logical_date, conf=conf, retries=retries)

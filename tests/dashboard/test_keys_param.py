"""Every DAG honours the dashboard's "retry these": it declares a ``keys`` Param (a list of record
keys) and the registry maps its integration to it. Each DAG's own e2e tests prove the retry
re-sends exactly those records (tests/dags/test_*.py, ``keys`` tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

from crm_sync.dashboard.registry import KNOWN
from crm_sync.dashboard.retry import KEYS_PARAM

ROOT = Path(__file__).resolve().parents[2]
IN_PROGRESS: set[str] = set()
"""DAGs whose ``keys`` support another change is adding (drop from here when it lands)."""
DAG_FILES = sorted(
    p for p in (ROOT / "dags").glob("*.py") if not p.name.startswith("_") and p.stem not in IN_PROGRESS
)


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.stem)
def test_every_dag_declares_a_keys_param(dag_file: Path) -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(dag_file), bundle_name="dags-folder")
    assert bag.import_errors == {}
    [dag] = bag.dags.values()
    assert KEYS_PARAM in dag.params, f"{dag.dag_id} has no {KEYS_PARAM!r} Param: the dashboard answers 409"
    param = dag.params.get_param(KEYS_PARAM)
    assert param.schema["type"] == "array"
    assert param.resolve() == []  # no keys: an ordinary run
    assert f"`{KEYS_PARAM}`" in (dag.doc_md or ""), f"{dag.dag_id}'s doc_md does not list {KEYS_PARAM!r}"
    assert dag.dag_id in KNOWN.values(), f"the registry maps no integration to {dag.dag_id}"

"""Every DAG file imports cleanly, does no I/O at import, and carries what users rely on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAG_FILES = sorted(p for p in (ROOT / "dags").glob("*.py") if not p.name.startswith("_"))
PROBE = Path(__file__).with_name("_parse_probe.py")
PARSE_TIMES: dict[str, float] = {}
KNOWN_POOLS = {
    "default_pool",
    "salesforce_api",
    "rapidpro_api",
    "whatsapp_api",
    "maxio_api",
    "marketo_api",
    "pipedrive_api",
    "mobile_commons_api",
}


def test_there_are_dag_files():
    assert DAG_FILES, "dags/ holds no DAG file"


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"), bundle_name="dags-folder")


def test_dagbag_has_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert dagbag.dag_ids, "no DAG was found in dags/"


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.name)
def test_file_parses_alone_without_io(dag_file: Path):
    probe = subprocess.run(
        [sys.executable, str(PROBE), str(dag_file)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr[-2000:]
    report = json.loads(probe.stdout.strip().splitlines()[-1])
    PARSE_TIMES[dag_file.name] = report["parse_seconds"]
    assert report["import_errors"] == {}
    assert report["dag_ids"], f"{dag_file.name} defines no DAG"
    assert report["io"] == [], f"{dag_file.name} does I/O at import: {report['io']}"


def _dags(dagbag):
    # dagbag.dags, not get_dag(): get_dag() consults the metadata database.
    return [dagbag.dags[dag_id] for dag_id in sorted(dagbag.dags)]


def test_every_dag_is_documented_tagged_and_retried(dagbag):
    for dag in _dags(dagbag):
        assert dag.tags, f"{dag.dag_id}: no tags"
        assert "crm_sync" in dag.tags, f"{dag.dag_id}: tag 'crm_sync' missing"
        assert len(dag.doc_md or "") > 200, f"{dag.dag_id}: doc_md missing or thin"
        assert dag.owner not in (None, "", "airflow"), f"{dag.dag_id}: set a real owner"
        for task in dag.tasks:
            assert task.retries >= 2, f"{dag.dag_id}.{task.task_id}: retries={task.retries}"
            assert task.retry_exponential_backoff, f"{dag.dag_id}.{task.task_id}: no exponential backoff"
            assert task.pool in KNOWN_POOLS, f"{dag.dag_id}.{task.task_id}: unknown pool {task.pool}"


def test_every_dag_has_the_common_params(dagbag):
    for dag in _dags(dagbag):
        params = dag.params
        for name in ("dry_run", "full_refresh"):
            assert name in params, f"{dag.dag_id}: Param {name!r} missing"
            assert params[name] is False, f"{dag.dag_id}: Param {name!r} must default to False"
        dag.validate()


def test_scheduled_dags_have_real_data_intervals(dagbag):
    from airflow.timetables.trigger import CronTriggerTimetable

    for dag in _dags(dagbag):
        # A cron string gives zero-width windows in Airflow 3 (reference/airflow3.md section 0):
        # backfills of missed days would load nothing.
        assert not isinstance(dag.timetable, CronTriggerTimetable), dag.dag_id


def pytest_terminal_summary_hook(terminalreporter) -> None:  # called from tests/dags/conftest.py
    """Report parse time per DAG file."""
    if PARSE_TIMES:
        terminalreporter.write_sep("-", "DAG parse time per file (fresh interpreter)")
        for name, seconds in sorted(PARSE_TIMES.items()):
            terminalreporter.write_line(f"{name:50s} {seconds:6.3f} s")

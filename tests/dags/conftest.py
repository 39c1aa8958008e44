"""Report DAG parse times at the end of the run."""

from __future__ import annotations


def pytest_terminal_summary(terminalreporter) -> None:
    from tests.dags import test_dag_integrity

    test_dag_integrity.pytest_terminal_summary_hook(terminalreporter)

"""Tasks shared by both Mobile Commons DAGs: the report bodies run inside tasks, never at parse time."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from crm_sync.integrations.mobile_commons.report import build_report, render_markdown, write_report
from crm_sync.integrations.mobile_commons.runtime import load_config
from crm_sync.operators.context import SyncRun
from crm_sync.operators.report import ReportSyncOperator

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator

log = logging.getLogger(__name__)


def synchronization_report(context: Any, integration: str) -> dict[str, Any]:
    """Build the last 24 hours' report, print it in the task log, write it as files; return counts."""
    from crm_sync.hooks.database import StagingHook

    run = SyncRun.from_context(context, integration)
    # The ledger is stamped with wall-clock time, so "the last 24 hours" are the real ones.
    report = build_report(StagingHook().get_engine())
    log.info("synchronization report:\n%s", render_markdown(report))
    markdown, page = write_report(report, load_config(run).report_path, run.run_id)
    log.info("report written to %s and %s", markdown, page)
    return {**report.as_dict(), "markdown": str(markdown), "html": str(page)}


def add_reports(push: BaseOperator, integration: str) -> ReportSyncOperator:
    """Add the closing tasks after ``push`` to the DAG being defined (call inside ``with DAG``).

    ``synchronization_report`` runs whatever happened (trigger rule all_done); ``report`` is the
    leaf, so a failed push still fails the DAG run.
    """
    from airflow.sdk import get_current_context, task

    @task(task_id="synchronization_report", trigger_rule="all_done")
    def write_synchronization_report() -> dict[str, Any]:
        """The last 24 hours by the vendor's categories: task log and Markdown/HTML files."""
        return synchronization_report(get_current_context(), integration)

    report = ReportSyncOperator(
        task_id="report", integration=integration, push_task_ids=[push.task_id], max_reject_ratio=0.5
    )
    push >> write_synchronization_report() >> report
    push >> report
    return report

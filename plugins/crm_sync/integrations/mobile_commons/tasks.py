"""Task bodies shared by both Mobile Commons DAGs (called inside tasks, never at parse time)."""

from __future__ import annotations

import logging
from typing import Any

from crm_sync.integrations.mobile_commons.report import build_report, render_markdown, write_report
from crm_sync.integrations.mobile_commons.runtime import load_config
from crm_sync.operators.context import SyncRun

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

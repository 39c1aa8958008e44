"""What both Mobile Commons DAGs share at run time: configuration, the daily quota, hooks."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

from crm_sync.exceptions import AuthError, QuotaExhausted
from crm_sync.integrations.mobile_commons.config import CONFIG_VARIABLE, MobileCommonsConfig
from crm_sync.operators.context import SyncRun
from crm_sync.sync.quota import QuotaBudget
from crm_sync.sync.schema import begin_write, sync_log

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

NIGHTLY = "salesforce_mobile_commons_nightly"
OPTINS = "mobile_commons_salesforce_optins"
QUOTA_API = "mobile_commons_sync"
"""The daily budget both DAGs spend: one unit per record written (the vendor's Daily API Quota)."""
VALIDATION_ERROR = "validation_error"

T = TypeVar("T")


def load_config(run: SyncRun) -> MobileCommonsConfig:
    """Defaults, then the Variable ``mobile_commons_sync_config``, then the ``config`` Param."""
    from airflow.sdk import Variable

    stored = Variable.get(CONFIG_VARIABLE, default=None, deserialize_json=True) or {}
    return MobileCommonsConfig.from_mapping({**stored, **(run.params.get("config") or {})})


def daily_budget(engine: Engine, config: MobileCommonsConfig) -> QuotaBudget:
    """The shared daily quota (persisted in ``quota_usage``, so both DAGs and every retry see it)."""
    return QuotaBudget(engine, QUOTA_API, daily_limit=config.daily_quota)


def take(budget: QuotaBudget, wanted: int) -> int:
    """Spend up to ``wanted`` units at once and return how many were granted (0 at the limit)."""
    if wanted <= 0:
        return 0
    try:
        budget.spend(wanted)
        return wanted
    except QuotaExhausted:
        pass
    left = budget.remaining() or 0
    while left > 0:
        try:
            budget.spend(min(left, wanted))
            return min(left, wanted)
        except QuotaExhausted:  # another DAG spent some in between: ask again
            left = budget.remaining() or 0
    return 0


def guard_credentials(engine: Engine, run: SyncRun, conn_id: str, call: Callable[[], T]) -> T:
    """Run ``call``; when credentials are refused, log a Validation Error row, then re-raise.

    The row names the connection, never the credentials, so the synchronization report can
    show why nothing synced.
    """
    try:
        return call()
    except AuthError as exc:
        with begin_write(engine) as conn:
            conn.execute(
                sync_log.insert().values(
                    run_id=run.run_id,
                    integration=run.integration,
                    entity="connection",
                    key=conn_id,
                    action="skip",
                    status="failed",
                    error_code=VALIDATION_ERROR,
                    message=f"credentials refused (HTTP {exc.status})",
                    logged_at=datetime.now(UTC),
                )
            )
        raise

"""Prometheus text exposition of the ledger: one scrape reads the staging database once.

Per integration (labels ``integration``, and ``outcome`` or ``api``):

- ``crm_sync_last_run_records``: the latest run's records by outcome (created, updated,
  deleted, unchanged, rejected, skipped, failed, parked);
- ``crm_sync_last_run_api_calls``: by the kind the push tasks report (``total``, ``rest``...);
- ``crm_sync_last_run_budget_left``: per external API;
- ``crm_sync_last_run_duration_seconds`` and ``crm_sync_last_run_success`` (1 or 0);
- ``crm_sync_last_success_timestamp_seconds``: alert when it grows stale;
- ``crm_sync_outbox_pending`` and ``crm_sync_records_parked``: records waiting.

Plus ``crm_sync_api_budget_left`` per API from ``quota_usage`` (today's window).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from crm_sync.dashboard.queries import api_budgets, overview

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

__all__ = ["CONTENT_TYPE", "render_metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _LedgerCollector(Collector):
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def collect(self) -> Iterator[Metric]:
        records = GaugeMetricFamily(
            "crm_sync_last_run_records",
            "Records of the latest run by outcome",
            labels=["integration", "outcome"],
        )
        calls = GaugeMetricFamily(
            "crm_sync_last_run_api_calls",
            "API calls of the latest run, by the kind its push tasks report (total, rest, bulk, ...)",
            labels=["integration", "kind"],
        )
        left = GaugeMetricFamily(
            "crm_sync_last_run_budget_left",
            "Daily API budget left at the end of the latest run",
            labels=["integration", "api"],
        )
        duration = GaugeMetricFamily(
            "crm_sync_last_run_duration_seconds", "Duration of the latest run", labels=["integration"]
        )
        succeeded = GaugeMetricFamily(
            "crm_sync_last_run_success", "1 when the latest run succeeded", labels=["integration"]
        )
        last_ok = GaugeMetricFamily(
            "crm_sync_last_success_timestamp_seconds",
            "Unix time the latest successful run finished",
            labels=["integration"],
        )
        pending = GaugeMetricFamily(
            "crm_sync_outbox_pending", "Outbox operations not yet confirmed", labels=["integration"]
        )
        parked = GaugeMetricFamily(
            "crm_sync_records_parked",
            "Records the latest run parked (API quota spent)",
            labels=["integration"],
        )
        for entry in overview(self._engine):
            name = entry["integration"]
            run = entry["last_run"]
            if run:
                for outcome, count in run["counts"].items():
                    records.add_metric([name, outcome], count)
                for api, count in sorted(run["api_calls"].items()):
                    calls.add_metric([name, api], count)
                for api, value in sorted(run["budget_left"].items()):
                    if isinstance(value, int | float):
                        left.add_metric([name, api], value)
                if run["duration_s"] is not None:
                    duration.add_metric([name], run["duration_s"])
                succeeded.add_metric([name], 1 if run["state"] == "success" else 0)
            if entry["last_success_at"]:
                last_ok.add_metric([name], datetime.fromisoformat(entry["last_success_at"]).timestamp())
            pending.add_metric([name], entry["waiting"]["outbox_pending"])
            parked.add_metric([name], entry["waiting"]["parked"])
        budget = GaugeMetricFamily(
            "crm_sync_api_budget_left", "Calls left in today's API window", labels=["api"]
        )
        for api in api_budgets(self._engine):
            if api["left"] is not None:
                budget.add_metric([api["api"]], api["left"])
        yield from (records, calls, left, duration, succeeded, last_ok, pending, parked, budget)


def render_metrics(engine: Engine) -> bytes:
    """Return the metrics in Prometheus text format 0.0.4."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_LedgerCollector(engine))
    return generate_latest(registry)

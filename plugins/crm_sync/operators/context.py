"""What every sync step needs to know about the DAG run it belongs to."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from crm_sync.exceptions import ConfigurationError
from crm_sync.sync.ledger import start_run

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


@dataclass(frozen=True, slots=True)
class SyncRun:
    """One DAG run of one integration, as the sync steps see it.

    The window comes from the data interval for scheduled runs and backfills; manual runs
    have no data interval in Airflow 3 (reference/airflow3.md section 0), so they fall back
    to the ``window_start``/``window_end`` Params, then to ``dag_run.run_after``.
    """

    integration: str
    dag_id: str
    run_id: str
    dry_run: bool
    full_refresh: bool
    window_start: datetime | None
    window_end: datetime | None
    triggered_by: str
    params: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_context(cls, context: Mapping[str, Any], integration: str) -> SyncRun:
        """Build from an Airflow task context."""
        dag_run = context["dag_run"]
        params = dict(context.get("params") or {})
        start = context.get("data_interval_start") or _param_datetime(params, "window_start")
        end = context.get("data_interval_end") or _param_datetime(params, "window_end")
        if end is None:
            end = getattr(dag_run, "run_after", None)
        user = getattr(dag_run, "triggering_user_name", None)
        return cls(
            integration=integration,
            dag_id=dag_run.dag_id,
            run_id=dag_run.run_id,
            dry_run=bool(params.get("dry_run", False)),
            full_refresh=bool(params.get("full_refresh", False)),
            window_start=start,
            window_end=end,
            triggered_by=user or str(getattr(dag_run, "run_type", "scheduled")),
            params=params,
        )

    def record_start(self, engine: Engine) -> None:
        """Record this run in the ledger as running (a retried task resets its row)."""
        start_run(
            engine,
            integration=self.integration,
            run_id=self.run_id,
            dag_id=self.dag_id,
            dry_run=self.dry_run,
            full_refresh=self.full_refresh,
        )

    def requested_keys(self, *param_names: str | None) -> list[str]:
        """Record keys this run is limited to: the named Params plus ``keys``, in order, unique.

        ``keys`` is the Param every crm_sync DAG honours (the dashboard's "retry these");
        a DAG may have its own too (e.g. ``pmi_ids``). A Param may hold a list or a string
        of keys separated by commas or new lines. Empty: no limit.
        """
        found: list[str] = []
        for name in (*param_names, KEYS_PARAM):
            for key in _split_keys(self.params.get(name) if name else None):
                if key not in found:
                    found.append(key)
        return found


KEYS_PARAM = "keys"
"""The Param by which any crm_sync DAG re-sends exactly these record keys (dashboard retries)."""


def _split_keys(value: Any) -> list[str]:
    if value in (None, "", []):
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.replace("\n", ",").split(",") if part.strip()]
    return [str(v).strip() for v in value if str(v).strip()]


def _param_datetime(params: Mapping[str, Any], name: str) -> datetime | None:
    value = params.get(name)
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise ConfigurationError(f"Param {name!r} is not an ISO 8601 date-time") from exc
    if parsed.tzinfo is None:
        raise ConfigurationError(f"Param {name!r} needs a time zone (e.g. 2026-01-31T00:00:00+00:00)")
    return parsed

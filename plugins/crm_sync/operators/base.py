"""The base of every sync step: which integration and entity, where staging lives."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from crm_sync.hooks.database import StagingHook
from crm_sync.operators.context import SyncRun

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


class SyncStepOperator(BaseOperator):
    """A step of one integration's sync of one entity (stage, diff, push, report)."""

    ui_color = "#e8f1fb"

    def __init__(
        self,
        *,
        integration: str,
        entity: str,
        staging_conn_id: str = StagingHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not integration or not entity:
            raise ValueError("integration and entity are required")
        self.integration = integration
        self.entity = entity
        self.staging_conn_id = staging_conn_id

    def staging_engine(self) -> Engine:
        """Return the staging database engine (schema ensured)."""
        return StagingHook(self.staging_conn_id).get_engine()

    def sync_run(self, context: Mapping[str, Any]) -> SyncRun:
        """Return this DAG run as the sync steps see it."""
        return SyncRun.from_context(context, self.integration)

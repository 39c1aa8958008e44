"""Sensors that wait for a source to be ready, without blocking a worker slot."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from airflow.sdk import BaseSensorOperator

from crm_sync.operators.context import SyncRun

ReadyCheck = Callable[[SyncRun], tuple[bool, int, int]]
"""Returns ``(ready, measured, threshold)`` for the run."""


class SourceReadySensor(BaseSensorOperator):
    """Wait until a source load looks complete (e.g. a row count above a threshold).

    Replaces the seed's endless ``while count <= 100: sleep(600)`` loop: reschedule mode frees
    the worker between pokes, and the timeout fails the run with a clear message.

    Args:
        integration: the integration whose run this is.
        ready: the check, called with the run each poke.
    """

    def __init__(self, *, integration: str, ready: ReadyCheck, **kwargs: Any) -> None:
        kwargs.setdefault("mode", "reschedule")
        kwargs.setdefault("poke_interval", 600)
        kwargs.setdefault("timeout", 6 * 3600)
        super().__init__(**kwargs)
        self.integration = integration
        self.ready = ready

    def poke(self, context: Any) -> bool:
        """Run the check once and log what it measured."""
        ok, measured, threshold = self.ready(SyncRun.from_context(context, self.integration))
        self.log.info(
            "source %s: %d rows in today's load (ready when above %d)",
            "ready" if ok else "not ready",
            measured,
            threshold,
        )
        return ok

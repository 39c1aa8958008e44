"""Wait for the Orders of the run's opportunities (the original slept a fixed 30 seconds).

Salesforce CPQ creates the Order from the primary quote some time after the close. The sensor
pokes in reschedule mode (no worker slot held between pokes) and, on timeout, fails naming
each opportunity and quote still without an Order. Those opportunities get a pending
``order`` step in the outbox, so the next run tries them again; after
:data:`MAX_ORDER_WAITS` timed-out waits an opportunity is rejected instead, so one order
that never comes does not hold up every later run.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowSensorTimeout

from crm_sync.hooks.database import StagingHook
from crm_sync.hooks.salesforce import SalesforceSyncHook
from crm_sync.integrations.maxio_billing.billing import (
    INTEGRATION,
    missing_orders,
    opportunity_outcome,
    staged_opportunities,
)
from crm_sync.integrations.maxio_billing.provision import ENTITY
from crm_sync.operators.context import SyncRun
from crm_sync.sync.ledger import apply_outcomes
from crm_sync.sync.outbox import Outbox
from crm_sync.sync.records import Status

__all__ = ["MAX_ORDER_WAITS", "OrderReadySensor", "record_order_timeout"]

MAX_ORDER_WAITS = 3


def record_order_timeout(engine: sa.Engine, run_id: str, missing: list[tuple[str, str]]) -> list[str]:
    """Ledger + outbox for a timed-out wait; return the opportunities given up on.

    Every opportunity of the run gets a pending ``order`` step (the run ends here, so the
    next run must take them all again; provisioning completes the step once the Order is
    there); the late ones also get a failed outcome, or a rejection after the last wait.
    """
    box = Outbox(engine, INTEGRATION)
    late = {opp for opp, _ in missing}
    for row in staged_opportunities(engine, run_id):
        if row["Id"] not in late:
            box.claim(Outbox.op_key("order", row["Id"]), entity="order", record_key=row["Id"], run_id=run_id)
    outcomes, given_up = [], []
    for opp, quote in missing:
        op_key = Outbox.op_key("order", opp)
        entry = box.claim(op_key, entity="order", record_key=opp, run_id=run_id)
        message = f"no Order from primary quote {quote} (wait {entry.attempts} of {MAX_ORDER_WAITS})"
        if entry.attempts >= MAX_ORDER_WAITS:
            box.fail(op_key, "ORDER_MISSING")
            given_up.append(opp)
            outcomes.append(
                opportunity_outcome(opp, Status.REJECTED, "ORDER_MISSING", message, field="SBQQ__Quote__c")
            )
        else:
            outcomes.append(opportunity_outcome(opp, Status.FAILED, "ORDER_TIMEOUT", message))
    apply_outcomes(engine, run_id=run_id, integration=INTEGRATION, entity=ENTITY, outcomes=outcomes)
    return given_up


class OrderReadySensor(BaseSensorOperator):
    """Wait until every opportunity staged by this run has an Order for its primary quote.

    Args:
        salesforce_conn_id: the Salesforce connection.
        staging_conn_id: the staging database connection.
    """

    def __init__(
        self,
        *,
        salesforce_conn_id: str = SalesforceSyncHook.default_conn_name,
        staging_conn_id: str = StagingHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("mode", "reschedule")
        kwargs.setdefault("poke_interval", 30)
        kwargs.setdefault("timeout", 30 * 60)
        super().__init__(**kwargs)
        self.salesforce_conn_id = salesforce_conn_id
        self.staging_conn_id = staging_conn_id

    def _missing(self, context: Any) -> tuple[SyncRun, sa.Engine, list[tuple[str, str]]]:
        run = SyncRun.from_context(context, INTEGRATION)
        engine = StagingHook(self.staging_conn_id).get_engine()
        return run, engine, missing_orders(engine, run.run_id, SalesforceSyncHook(self.salesforce_conn_id))

    def poke(self, context: Any) -> bool:
        """Check the Orders once and log how many are still missing."""
        _, _, missing = self._missing(context)
        if missing:
            self.log.info("%d opportunities wait for their Order, e.g. %s", len(missing), missing[0][0])
        return not missing

    def execute(self, context: Any) -> Any:
        """Poke; on timeout record the late opportunities and fail naming them."""
        try:
            return super().execute(context)
        except AirflowSensorTimeout:
            run, engine, missing = self._missing(context)
            given_up = record_order_timeout(engine, run.run_id, missing)
            names = ", ".join(f"opportunity {opp} (quote {quote})" for opp, quote in missing[:10])
            more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
            gave_up = f"; given up after {MAX_ORDER_WAITS} waits: {', '.join(given_up)}" if given_up else ""
            raise AirflowSensorTimeout(
                f"no Salesforce Order after {self.timeout:.0f}s for {names}{more}; the next run "
                f"tries again{gave_up}"
            ) from None

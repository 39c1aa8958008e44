"""
### Closed-won Salesforce opportunities → Maxio billing and the Maxio Core link

Every 15 minutes, the Opportunities that moved to **Closed Won** (type **New Logo**; both
configurable) in the run's window and are not yet provisioned, plus those an earlier run left
unfinished, are billed in Maxio Advanced Billing (`maxio_default`) and linked in Maxio Core
(`maxio_core_default`). For one opportunity, trigger a run with `opportunity_id` (the
original's unauthenticated webhook is now Airflow's authenticated REST API; see the README).

**Steps**: `find_opportunities` (validates `opportunity_id` before any query; product gate: a
line item's ProductCode contains `CASH`, else skipped with the reason) → `wait_for_orders`
(reschedule sensor: CPQ creates the Order after the close; on timeout it fails naming each
opportunity) → `provision_billing` (customer by exact reference = Account Id, one volume price
point per mapped order item with a handle from the order item, subscription with reference =
Opportunity Id; each looked up before any create) → `link_contracts` (subscription id into the
Core contract's `text_field2`, answer checked, only then `Maxio_Provisioned__c` on the
Opportunity) → `report`.

Each step per opportunity is recorded in the staging outbox, so a failed or retried run
resumes at the step that failed and never creates a duplicate.

**Params**: `dry_run` (read and plan, write nothing), `opportunity_id`, `keys` (several
Opportunity Ids, set by the CRM Sync dashboard's "retry these": exactly those are provisioned,
each resuming at its failed step; each id is checked like `opportunity_id` before any query).
`full_refresh` has no effect here (provisioning is create-once).

**Config**: `include/config/maxio_billing.yaml` (stage, type, product gate, customer fallbacks,
product → component map), overridden by the Variable `salesforce_maxio_billing_config` (JSON).

**Outputs**: one ledger row per opportunity (`sync_log`, entity `opportunity`) with Maxio's
own error text for rejections; the run summary in `sync_run`.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, CronDataIntervalTimetable, Param, Variable, get_current_context, task

from crm_sync.dag_support import POOLS, START_DATE, common_params, default_args, keys_param
from crm_sync.hooks.database import StagingHook
from crm_sync.hooks.maxio import MaxioHook
from crm_sync.hooks.maxio_core import MaxioCoreHook
from crm_sync.hooks.salesforce import SalesforceSyncHook
from crm_sync.integrations.maxio_billing import billing
from crm_sync.integrations.maxio_billing.config import VARIABLE, BillingConfig
from crm_sync.integrations.maxio_billing.orders import OrderReadySensor
from crm_sync.operators.context import SyncRun
from crm_sync.operators.report import ReportSyncOperator

INTEGRATION = billing.INTEGRATION
SF, MAXIO = POOLS["salesforce"], POOLS["maxio"]


def _config() -> BillingConfig:
    """The YAML config with the Variable's overrides (read at run time, never at parse)."""
    return BillingConfig.load(Variable.get(VARIABLE, default=None, deserialize_json=True))


def _run() -> SyncRun:
    return SyncRun.from_context(get_current_context(), INTEGRATION)


with DAG(
    dag_id="salesforce_maxio_billing",
    description="Closed-won Salesforce opportunities -> Maxio billing and the Maxio Core link",
    schedule=CronDataIntervalTimetable("*/15 * * * *", timezone="UTC"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=default_args(execution_timeout=timedelta(hours=1)),
    doc_md=__doc__,
    tags=["crm_sync", "salesforce", "maxio"],
    params=common_params(
        opportunity_id=Param(
            None,
            type=["null", "string"],
            pattern=billing.OPPORTUNITY_ID_PATTERN,
            title="Opportunity Id",
            description="Provision this one Opportunity (15 or 18 characters) instead of the window's.",
        ),
        keys=keys_param("Opportunity Ids", pattern=billing.OPPORTUNITY_ID_PATTERN),
    ),
) as dag:

    @task(task_id="find_opportunities", pool=SF)
    def find_opportunities() -> dict:
        """Validate the request, find the window's opportunities, gate on products, stage them."""
        return billing.find_opportunities(_run(), StagingHook().get_engine(), SalesforceSyncHook(), _config())

    wait_for_orders = OrderReadySensor(
        task_id="wait_for_orders", pool=SF, poke_interval=30, timeout=30 * 60, mode="reschedule"
    )

    @task(task_id="provision_billing", pool=MAXIO)
    def provision_billing() -> dict:
        """Customer, price points and subscription per opportunity (found before created)."""
        return billing.provision_billing(
            _run(), StagingHook().get_engine(), SalesforceSyncHook(), MaxioHook(), _config()
        )

    @task(task_id="link_contracts", pool=MAXIO)
    def link_contracts() -> dict:
        """Subscription id into the Core contract, checked; then mark the Opportunity complete."""
        return billing.link_contracts(
            _run(), StagingHook().get_engine(), SalesforceSyncHook(), MaxioCoreHook(), _config()
        )

    report = ReportSyncOperator(
        task_id="report",
        integration=INTEGRATION,
        push_task_ids=["find_opportunities", "provision_billing", "link_contracts"],
        max_reject_ratio=0.05,
    )

    find_opportunities() >> wait_for_orders >> provision_billing() >> link_contracts() >> report

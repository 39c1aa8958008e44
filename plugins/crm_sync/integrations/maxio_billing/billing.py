"""The steps of salesforce_maxio_billing: find, wait for Orders, provision, link, as plain functions.

The DAG file wires these to tasks; they take the run, the staging engine and the hooks, so
tests and the benchmark call the same code. XCom carries only the counts they return.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from crm_sync.exceptions import ConfigurationError, RecordRejected, RetriableError
from crm_sync.hooks import soql
from crm_sync.integrations.maxio_billing import cpq
from crm_sync.integrations.maxio_billing.config import BillingConfig
from crm_sync.integrations.maxio_billing.provision import ENTITY, StepRunner, plan_components, provision
from crm_sync.operators.context import SyncRun
from crm_sync.sync.ledger import apply_outcomes
from crm_sync.sync.outbox import Outbox
from crm_sync.sync.records import Action, Outcome, Status
from crm_sync.sync.schema import outbox, staged_record
from crm_sync.sync.staging import stage_records

__all__ = [
    "INTEGRATION",
    "OPPORTUNITY_ID_PATTERN",
    "find_opportunities",
    "link_contracts",
    "missing_orders",
    "opportunity_outcome",
    "provision_billing",
    "requested_opportunities",
    "requested_opportunity",
    "staged_opportunities",
]

log = logging.getLogger(__name__)

INTEGRATION = "salesforce_maxio_billing"
OPPORTUNITY_ID_PATTERN = r"^[a-zA-Z0-9]{15}([a-zA-Z0-9]{3})?$"
"""The Param's JSON-schema pattern; the code checks the checksum too (soql.validate_sf_id)."""
MANUAL_LOOKBACK = timedelta(days=1)
#: Core link errors that mean "not yet" (Core creates the contract when its AB sync runs).
CORE_NOT_YET = {"CONTRACT_NOT_FOUND"}


def _opportunity_id(value: Any, param: str) -> str:
    """One requested Opportunity id as 18 characters: checksum and 006 prefix checked.

    Raises:
        ConfigurationError: naming the Param, the record and what is wrong with it.
    """
    try:
        opportunity_id = soql.sf_id_18(value)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"Param {param!r}: {exc}") from exc
    if not opportunity_id.startswith("006"):
        raise ConfigurationError(f"Param {param!r}: {value!r} is not an Opportunity id (prefix 006)")
    return opportunity_id


def requested_opportunity(params: Mapping[str, Any]) -> str | None:
    """The ``opportunity_id`` Param as an 18-character id, or None; checked before any query.

    Raises:
        ConfigurationError: naming the Param and what is wrong with it.
    """
    value = params.get("opportunity_id")
    return None if value in (None, "") else _opportunity_id(value, "opportunity_id")


def requested_opportunities(run: SyncRun) -> list[str]:
    """``opportunity_id`` plus the dashboard's ``keys``, each checked, as unique 18-character ids.

    Raises:
        ConfigurationError: naming the Param and the id that is not an Opportunity id.
    """
    single = requested_opportunity(run.params)
    found = [] if single is None else [single]
    for value in run.requested_keys():
        opportunity_id = _opportunity_id(value, "keys")
        if opportunity_id not in found:
            found.append(opportunity_id)
    return found


def opportunity_outcome(
    key: str, status: Status, code: str | None = None, message: str | None = None, **kw: Any
) -> Outcome:
    """One opportunity's outcome (the ledger's action is always ``create``: provisioning)."""
    return Outcome(key=key, action=Action.CREATE, status=status, error_code=code, message=message, **kw)


def _rejected(exc: RecordRejected, key: str) -> Outcome:
    return opportunity_outcome(key, Status.REJECTED, exc.code, exc.reason, field=exc.field)


def _calls(**by_api: int) -> dict[str, int]:
    """API calls of one task by API, with their ``total`` (the report adds tasks up)."""
    return {**by_api, "total": sum(by_api.values())}


def due_from_outbox(engine: sa.Engine) -> set[str]:
    """Opportunities with a step left pending by an earlier run (transient error, crash, Core not yet)."""
    query = sa.select(outbox.c.record_key).where(
        outbox.c.integration == INTEGRATION, outbox.c.state == "pending"
    )
    with engine.connect() as conn:
        return set(conn.execute(query.distinct()).scalars())


def find_opportunities(run: SyncRun, engine: sa.Engine, sf: Any, config: BillingConfig) -> dict[str, Any]:
    """Find the run's opportunities, apply the product gate and stage the ones to provision.

    A manual run takes the ``opportunity_id`` and ``keys`` Params (exactly those, resumed at
    their failed step by the outbox); a scheduled run the opportunities that moved to the
    closed-won stage in its window, plus those an earlier run left unfinished.
    Opportunities that will not be provisioned get a skipped or rejected outcome with reason.
    """
    requested = requested_opportunities(run)  # before any query: a bad id never reaches SOQL
    run.record_start(engine)
    outcomes: list[Outcome] = []
    if requested:
        heads = cpq.read_heads(sf, config, requested)
        unknown = [opportunity_id for opportunity_id in requested if opportunity_id not in heads]
        if unknown:
            missing = ", ".join(unknown)
            raise ConfigurationError(
                f"Params 'opportunity_id'/'keys': no Opportunity {missing} in Salesforce"
            )
    else:
        if run.window_end is None:
            raise ConfigurationError("the run has neither a data interval nor a run_after time")
        # A manual run without a data interval (Airflow 3) looks back a day: safe, since only
        # opportunities not yet provisioned are taken.
        start = run.window_start or run.window_end - MANUAL_LOOKBACK
        heads = {h.id: h for h in cpq.find_in_window(sf, config, start, run.window_end)}
        due = due_from_outbox(engine) - set(heads)
        if due:
            log.info("%d opportunities left unfinished by earlier runs are due again", len(due))
            heads.update(cpq.read_heads(sf, config, due))
    box = Outbox(engine, INTEGRATION)
    candidates = []
    for head in heads.values():
        if head.complete:
            # Marked by an earlier run that stopped before recording it: stop it being due.
            _close_step(box, "complete", head.id, "already-complete")
            outcomes.append(
                opportunity_outcome(head.id, Status.SKIPPED, "ALREADY_PROVISIONED", "already provisioned")
            )
        elif head.stage != config.closed_won_stage:
            outcomes.append(
                opportunity_outcome(
                    head.id, Status.SKIPPED, "NOT_CLOSED_WON", f"stage is not {config.closed_won_stage}"
                )
            )
        elif not head.account_id or not head.quote_id:
            missing = "AccountId" if not head.account_id else "SBQQ__PrimaryQuote__c"
            outcomes.append(
                opportunity_outcome(
                    head.id, Status.REJECTED, "REQUIRED_FIELD_MISSING", f"{missing} is empty", field=missing
                )
            )
        else:
            candidates.append(head)
    gated = cpq.gate_products(sf, config, [h.id for h in candidates]) if candidates else set()
    eligible = []
    for head in candidates:
        if head.id in gated:
            eligible.append(head)
        else:
            outcomes.append(
                opportunity_outcome(
                    head.id,
                    Status.SKIPPED,
                    "NO_MATCHING_PRODUCT",
                    f"no line item's product code contains {config.product_code_contains!r}",
                )
            )
    stage_records(
        engine,
        run_id=run.run_id,
        integration=INTEGRATION,
        entity=ENTITY,
        records=[{"Id": h.id, "AccountId": h.account_id, "QuoteId": h.quote_id} for h in eligible],
        key_field="Id",
    )
    if outcomes:
        apply_outcomes(engine, run_id=run.run_id, integration=INTEGRATION, entity=ENTITY, outcomes=outcomes)
    counts = {"found": len(heads), "eligible": len(eligible), "not_provisioned": len(outcomes)}
    log.info("opportunities: %s", counts)
    return {**counts, "api_calls": _calls(salesforce=int(sf.api_calls.get("total", 0)))}


def staged_opportunities(engine: sa.Engine, run_id: str) -> list[dict[str, Any]]:
    """The opportunities :func:`find_opportunities` staged for this run, in key order."""
    query = (
        sa.select(staged_record.c.payload)
        .where(
            staged_record.c.run_id == run_id,
            staged_record.c.integration == INTEGRATION,
            staged_record.c.entity == ENTITY,
        )
        .order_by(staged_record.c.key)
    )
    with engine.connect() as conn:
        return [json.loads(payload) for payload in conn.execute(query).scalars()]


def missing_orders(engine: sa.Engine, run_id: str, sf: Any) -> list[tuple[str, str]]:
    """``(opportunity, quote)`` pairs of this run whose primary quote has no Order yet."""
    staged = staged_opportunities(engine, run_id)
    if not staged:
        return []
    orders = cpq.orders_by_quote(sf, (row["QuoteId"] for row in staged))
    return [(row["Id"], row["QuoteId"]) for row in staged if row["QuoteId"] not in orders]


def _heads(staged: Iterable[Mapping[str, Any]]) -> list[cpq.Head]:
    return [
        cpq.Head(
            id=r["Id"],
            account_id=r["AccountId"],
            quote_id=r["QuoteId"],
            stage=None,
            type=None,
            complete=False,
        )
        for r in staged
    ]


def provision_billing(
    run: SyncRun, engine: sa.Engine, sf: Any, maxio: Any, config: BillingConfig
) -> dict[str, Any]:
    """Create (or find) customer, price points and subscription for each staged opportunity.

    One opportunity's rejection or transient failure is recorded in the ledger and the others
    go on. A dry run reads and plans (mapping, tiers) and writes nothing.
    """
    bundles = cpq.read_bundles(sf, config, _heads(staged_opportunities(engine, run.run_id)))
    steps = StepRunner(Outbox(engine, INTEGRATION), run.run_id)
    outcomes: list[Outcome] = []
    provisioned = 0
    for opp, bundle in bundles.items():
        if bundle.order_id is not None and not run.dry_run:
            # Closes the step a timed-out wait left pending (see orders.record_order_timeout).
            _close_step(steps.outbox, "order", opp, bundle.order_id)
        try:
            if run.dry_run:
                planned = plan_components(bundle, config)
                outcomes.append(
                    opportunity_outcome(
                        opp, Status.SKIPPED, "DRY_RUN", f"would bill {len(planned)} component(s)"
                    )
                )
                continue
            provision(bundle, config, maxio, steps)
            # Due until link_contracts completes it, whatever happens to that task.
            steps.outbox.claim(
                Outbox.op_key("complete", opp), entity="complete", record_key=opp, run_id=run.run_id
            )
            provisioned += 1
        except RecordRejected as exc:
            log.warning("opportunity %s rejected: %s", opp, exc.code)
            outcomes.append(_rejected(exc, opp))
        except RetriableError as exc:
            log.warning("opportunity %s failed (will be retried): %s", opp, exc)
            outcomes.append(
                opportunity_outcome(opp, Status.FAILED, getattr(exc, "code", None) or "RETRIABLE", str(exc))
            )
    if outcomes:
        apply_outcomes(engine, run_id=run.run_id, integration=INTEGRATION, entity=ENTITY, outcomes=outcomes)
    calls = _calls(
        salesforce=int(sf.api_calls.get("total", 0)),
        maxio=0 if run.dry_run else int(maxio.api_calls.get("total", 0)),
    )
    return {"opportunities": len(bundles), "provisioned": provisioned, "api_calls": calls}


def _close_step(box: Outbox, step: str, opportunity_id: str, target_id: str) -> None:
    """Mark a step done if an earlier run left it open (no entry: nothing to do)."""
    op_key = Outbox.op_key(step, opportunity_id)
    entry = box.get(op_key)
    if entry is not None and not entry.is_done:
        box.complete(op_key, target_id)


def _subscriptions(engine: sa.Engine, opportunity_ids: Sequence[str]) -> dict[str, str]:
    """Opportunity -> Maxio subscription id, from the done ``subscription`` steps."""
    found: dict[str, str] = {}
    for start in range(0, len(opportunity_ids), 500):
        query = sa.select(outbox.c.record_key, outbox.c.target_id).where(
            outbox.c.integration == INTEGRATION,
            outbox.c.entity == "subscription",
            outbox.c.state == "done",
            outbox.c.record_key.in_(opportunity_ids[start : start + 500]),
        )
        with engine.connect() as conn:
            found.update(conn.execute(query).all())
    return found


def link_contracts(
    run: SyncRun, engine: sa.Engine, sf: Any, core: Any, config: BillingConfig
) -> dict[str, Any]:
    """Store each new subscription id in its Core contract, check it, then mark the Opportunity.

    The Opportunity is marked complete only after Core answered with the id stored; a contract
    Core has not created yet leaves the opportunity due for the next run.
    """
    if run.dry_run:
        return {"linked": 0, "completed": 0, "api_calls": _calls()}
    staged = {row["Id"]: row for row in staged_opportunities(engine, run.run_id)}
    subscriptions = _subscriptions(engine, sorted(staged))
    steps = StepRunner(Outbox(engine, INTEGRATION), run.run_id)
    outcomes: list[Outcome] = []
    linked: dict[str, str] = {}
    for opp, subscription_id in subscriptions.items():
        account_id = staged[opp]["AccountId"]
        try:
            steps.run(
                "core_link",
                opp,
                lambda a=account_id, s=subscription_id: str(
                    core.link_subscription(a, s, register_name_contains=config.core_register_contains).id
                ),
            )
            linked[opp] = subscription_id
        except RecordRejected as exc:
            if exc.code in CORE_NOT_YET:
                # Not a rejection: Core's own sync has not imported the subscription yet.
                op_key = Outbox.op_key("core_link", opp)
                steps.outbox.claim(op_key, entity="core_link", record_key=opp, run_id=run.run_id)
                outcomes.append(
                    opportunity_outcome(opp, Status.FAILED, exc.code, exc.reason, target_id=subscription_id)
                )
            else:
                outcomes.append(_rejected(exc, opp))
        except RetriableError as exc:
            outcomes.append(
                opportunity_outcome(opp, Status.FAILED, getattr(exc, "code", None) or "RETRIABLE", str(exc))
            )
    outcomes.extend(_mark_complete(sf, config, steps, linked))
    if outcomes:
        apply_outcomes(engine, run_id=run.run_id, integration=INTEGRATION, entity=ENTITY, outcomes=outcomes)
    completed = sum(1 for o in outcomes if o.status == Status.SUCCESS)
    return {
        "linked": len(linked),
        "completed": completed,
        "api_calls": _calls(
            salesforce=int(sf.api_calls.get("total", 0)), maxio_core=int(core.api_calls.get("total", 0))
        ),
    }


def _mark_complete(
    sf: Any, config: BillingConfig, steps: StepRunner, linked: Mapping[str, str]
) -> list[Outcome]:
    """Set the complete field (and the subscription id) on the linked Opportunities, in batches."""
    if not linked:
        return []
    records = []
    for opp, subscription_id in linked.items():
        record: dict[str, Any] = {"Id": opp, config.complete_field: True}
        if config.subscription_id_field:
            record[config.subscription_id_field] = subscription_id
        records.append(record)
    outcomes = []
    for result in sf.update("Opportunity", records):
        opp, subscription_id = result.key, linked[result.key]
        op_key = Outbox.op_key("complete", opp)
        steps.outbox.claim(op_key, entity="complete", record_key=opp, run_id=steps.run_id)
        if result.success:
            steps.outbox.complete(op_key, subscription_id)
            outcomes.append(opportunity_outcome(opp, Status.SUCCESS, target_id=subscription_id))
        else:
            steps.outbox.fail(op_key, result.error_code or "UPDATE_FAILED")
            outcomes.append(
                opportunity_outcome(
                    opp, Status.REJECTED, result.error_code, result.message, target_id=subscription_id
                )
            )
    return outcomes

"""aou_salesforce_sync on a real CeleryExecutor stack, triggered through the REST API.

The checks are the in-process tests' checks (every participant in Salesforce exactly once, a
change updates exactly the changed participants), plus what only a distributed run can show:
every task ran on a Celery worker (its Celery task id is in the result backend, with the
worker's name), and a worker killed with SIGKILL in the middle of a push loses nothing and
duplicates nothing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections import Counter
from typing import Any

import pytest
import sqlalchemy as sa

from tests.distributed.aou_world import DAY, LOAD_DAY, expected_participants
from tests.distributed.stack import CeleryStack

pytestmark = [pytest.mark.distributed, pytest.mark.slow, pytest.mark.timeout(600)]
DAG_ID = "aou_salesforce_sync"


def _contacts(sandbox: Any) -> list[dict[str, Any]]:
    records = sandbox.admin("salesforce").state(object="Contact")["records"]
    return [c for c in records if c.get("HP_PMI_ID__c")]


def _wait_for_partial_push(stack: CeleryStack, sandbox: Any, run_id: str, total: int) -> int:
    """Until push_contacts is running and has written some, not all, Contacts; its pid."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        rows = stack.sql(
            "SELECT state, pid FROM task_instance"
            " WHERE dag_id = :d AND run_id = :r AND task_id = 'push_contacts'",
            d=DAG_ID,
            r=run_id,
        )
        written = len(_contacts(sandbox))
        if rows and rows[0][0] == "running" and rows[0][1] and 0 < written < total:
            return int(rows[0][1])
        if written >= total:
            routes = sandbox.admin("salesforce").calls()["by_route"]
            pytest.fail(f"the push finished before the worker could be killed: {rows} {routes}")
        time.sleep(0.3)
    pytest.fail(f"push_contacts never ran partway\n{stack.logs_tail()}")


def assert_ran_on_celery(
    stack: CeleryStack, dag_id: str, run_id: str, killed: str | None = None
) -> Counter[str]:
    """Every task's last try went through Celery: its task id is in the result backend.

    The run can end a moment before the worker stores a task's result, so this waits for the
    backend to settle. A task that finished on a worker killed afterwards may stay
    ``STARTED`` (the worker died before storing it); anything else must reach SUCCESS.
    """
    deadline = time.monotonic() + 60
    while True:
        final = {}
        for task_id, _try, celery_id, status, worker in stack.celery_evidence(dag_id, run_id):
            final[task_id] = (celery_id, status, worker)
        assert final, "no task instance recorded"
        problems = []
        for task_id, (celery_id, status, worker) in final.items():
            allowed = {"SUCCESS", "STARTED"} if killed and (worker or "").startswith(killed) else {"SUCCESS"}
            if not celery_id:
                problems.append(f"{task_id} has no Celery task id: it did not go through Celery")
            elif not worker or worker.split("@")[0] not in {"w1", "w2"}:
                problems.append(f"{task_id}: the result backend recorded worker {worker!r}")
            elif status not in allowed:
                problems.append(f"{task_id} on {worker}: the result backend says {status}")
        if not problems:
            return Counter(worker.split("@")[0] for _c, _s, worker in final.values())
        if time.monotonic() > deadline:
            pytest.fail("; ".join(problems))
        time.sleep(1)


def test_worker_killed_mid_push_loses_and_duplicates_nothing(
    stack: CeleryStack, sandbox: Any, aou_world: dict[str, Any]
) -> None:
    expected = expected_participants(aou_world)
    sf = sandbox.admin("salesforce")
    # Slow writes down so that the kill lands between two Collections calls of one push.
    sf.faults([{"path": "composite/sobjects", "latency_ms": 1500, "times": None}])
    # Trigger the interval the scheduler would run next, before unpausing: unpausing alone
    # would start it as a scheduled run (catchup=False runs the latest interval).
    details = stack.wait_for_dag(DAG_ID)
    run_id = stack.trigger(DAG_ID, logical_date=details["next_dagrun_logical_date"])
    stack.unpause(DAG_ID)

    task_pid = _wait_for_partial_push(stack, sandbox, run_id, len(expected))
    worker = stack.worker_of(task_pid)
    assert worker, f"task process {task_pid} does not descend from any worker"
    written_before_kill = len(_contacts(sandbox))
    stack.components[worker].kill(signal.SIGKILL)
    # The task runs in its own process group and would outlive the worker; a lost machine
    # loses it too.
    with contextlib.suppress(ProcessLookupError):
        os.kill(task_pid, signal.SIGKILL)
    stack.components[worker].process.wait(timeout=30)
    sf.clear_faults()
    stack.start_worker(int(worker.removeprefix("worker")))
    stack.timings["killed_after_contacts"] = written_before_kill

    killed_at = time.monotonic()
    state = stack.wait_for_run(DAG_ID, run_id, timeout=420)
    stack.timings["kill_to_run_end_s"] = round(time.monotonic() - killed_at, 1)
    assert state == "success", (stack.task_states(DAG_ID, run_id), stack.logs_tail())

    tries = stack.sql(
        "SELECT try_number, state FROM task_instance_history"
        " WHERE dag_id = :d AND run_id = :r AND task_id = 'push_contacts'",
        d=DAG_ID,
        r=run_id,
    )
    assert tries, "the killed try was not recorded: the push was not retried"

    contacts = _contacts(sandbox)
    per_pmi = Counter(c["HP_PMI_ID__c"] for c in contacts)
    assert not [k for k, n in per_pmi.items() if n > 1], "duplicate Contacts after the retry"
    assert set(per_pmi) == set(expected), "missing or unexpected Contacts after the retry"
    journeys = [j for j in sf.state(object="Opportunity")["records"] if j.get("HP_PMI_ID__c")]
    assert len(journeys) == len(expected)
    assert_ran_on_celery(stack, DAG_ID, run_id, killed=f"w{worker.removeprefix('worker')}@")


def test_changed_rows_update_exactly_those_contacts_on_two_workers(
    stack: CeleryStack, sandbox: Any, aou_world: dict[str, Any]
) -> None:
    from crm_sync.integrations.aou.generator import mutate_source

    before = expected_participants(aou_world)
    changed = mutate_source(aou_world["source"], fraction=0.05, seed=3, day=LOAD_DAY)
    after = expected_participants(aou_world)
    differing = {k for k in after if after[k] != before[k]}
    withdrawn = {k for k in differing if after[k]["withdrawn"]}
    assert 0 < len(differing) <= changed

    stack.wait_for_dag(DAG_ID)
    stack.unpause(DAG_ID)
    run_id = stack.trigger(DAG_ID, logical_date=DAY.isoformat())
    state = stack.wait_for_run(DAG_ID, run_id)
    assert state == "success", (stack.task_states(DAG_ID, run_id), stack.logs_tail())

    staging = sa.create_engine(stack.databases.url("staging"))
    with staging.connect() as conn:
        updated = set(
            conn.execute(
                sa.text(
                    "SELECT key FROM sync_log WHERE entity = 'contact' AND action = 'update'"
                    " AND status = 'success' AND run_id = :run"
                ),
                {"run": run_id},
            ).scalars()
        )
    staging.dispose()
    assert updated == differing - withdrawn
    contacts = {c["HP_PMI_ID__c"]: c for c in _contacts(sandbox)}
    for pmi in updated:
        assert contacts[pmi]["LastName"] == after[pmi]["LastName"]

    assert_ran_on_celery(stack, DAG_ID, run_id)
    all_runs = stack.sql("SELECT DISTINCT run_id FROM dag_run WHERE dag_id = :d", d=DAG_ID)
    every = Counter()
    for (rid,) in all_runs:
        every.update(Counter(w.split("@")[0] for *_rest, w in stack.celery_evidence(DAG_ID, rid) if w))
    stack.timings["tasks_per_worker"] = dict(every)
    # Which worker takes which task is Celery's choice: the split is recorded, not asserted.

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from crm_sync.exceptions import FatalError
from crm_sync.sync.outbox import Outbox, OutboxState
from crm_sync.sync.schema import outbox as outbox_table
from crm_sync.sync.staging import make_engine


@pytest.fixture
def engine(staging_url):
    engine = make_engine(staging_url)
    yield engine
    engine.dispose()


def test_op_keys_are_deterministic_and_distinct():
    key = Outbox.op_key("subscription", "006A000001")
    assert key == Outbox.op_key("subscription", "006A000001")
    assert len(key) == 64
    assert key != Outbox.op_key("subscription", "006A000002")
    assert Outbox.op_key("a", "b|c") != Outbox.op_key("a|b", "c")
    assert Outbox.op_key("n", 1) == Outbox.op_key("n", "1")


def test_claim_complete_and_claim_again(engine):
    box = Outbox(engine, "maxio")
    key = box.op_key("customer", "001X")
    first = box.claim(key, entity="customer", record_key="001X", run_id="r1")
    assert (first.is_new, first.state, first.attempts) == (True, OutboxState.PENDING, 1)

    retry = box.claim(key, entity="customer", record_key="001X", run_id="r2")
    assert (retry.is_new, retry.state, retry.attempts, retry.run_id) == (False, OutboxState.PENDING, 2, "r2")

    box.complete(key, "cust_42")
    done = box.claim(key, entity="customer", record_key="001X", run_id="r3")
    assert (done.is_new, done.is_done, done.target_id, done.attempts) == (False, True, "cust_42", 2)
    assert box.get(key) == done


def test_a_failed_operation_is_pending_again_when_reclaimed(engine):
    box = Outbox(engine, "pipedrive")
    key = box.op_key("deal", "D1")
    box.claim(key, entity="deal", record_key="D1", run_id="r1")
    box.fail(key, "HTTP_504")
    assert box.get(key).state == OutboxState.FAILED
    assert box.get(key).error == "HTTP_504"
    assert box.pending() == []
    again = box.claim(key, entity="deal", record_key="D1", run_id="r2")
    assert (again.state, again.attempts, again.is_new) == (OutboxState.PENDING, 2, False)


def test_pending_lists_unresolved_entries_by_entity(engine):
    box = Outbox(engine, "maxio")
    other = Outbox(engine, "rapidpro")
    for entity, record in [("customer", "c1"), ("customer", "c2"), ("subscription", "s1")]:
        box.claim(box.op_key(entity, record), entity=entity, record_key=record, run_id="r")
    other.claim(other.op_key("flow", "x"), entity="flow", record_key="x", run_id="r")
    box.complete(box.op_key("customer", "c2"), "id-2")
    assert [entry.record_key for entry in box.pending()] == ["c1", "s1"]
    assert [entry.record_key for entry in box.pending("customer")] == ["c1"]
    assert [entry.record_key for entry in other.pending()] == ["x"]


def test_unknown_keys_cannot_be_completed(engine):
    box = Outbox(engine, "maxio")
    with pytest.raises(FatalError, match="claim them first"):
        box.complete(box.op_key("nope"), "id")
    with pytest.raises(ValueError, match="op_key"):
        box.claim("x" * 200, entity="e", record_key="k", run_id=None)


def test_concurrent_claims_create_one_entry(engine):
    box = Outbox(engine, "maxio")
    keys = [box.op_key("customer", i) for i in range(10)]
    barrier = threading.Barrier(2)

    def worker() -> list[bool]:
        results = []
        for key in keys:
            barrier.wait()
            results.append(box.claim(key, entity="customer", record_key=key[:8], run_id="r").is_new)
        return results

    with ThreadPoolExecutor(2) as pool:
        first, second = (future.result() for future in [pool.submit(worker), pool.submit(worker)])
    assert [a + b for a, b in zip(first, second, strict=True)] == [1] * len(keys)  # one winner per key
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(outbox_table.c.op_key, outbox_table.c.state, outbox_table.c.attempts)
        ).all()
    assert sorted(rows) == sorted((key, "pending", 2) for key in keys)


def test_many_keys_are_claimed_completed_and_failed_in_one_statement_each(engine):
    box = Outbox(engine, "rapidpro")
    keys = {box.op_key("start", i): f"row-{i}" for i in range(5)}
    [k0, k1, k2, k3, k4] = keys
    box.claim(k0, entity="start", record_key="row-0", run_id="r1")
    box.claim(k1, entity="start", record_key="row-1", run_id="r1")
    box.complete(k1, "start-1")

    claimed = box.claim_many(list(keys.items()), entity="start", run_id="r2")
    assert {k: (e.is_new, e.state, e.attempts) for k, e in claimed.items()} == {
        k0: (False, OutboxState.PENDING, 2),  # pending from r1: attempted again
        k1: (False, OutboxState.DONE, 1),  # done: left alone
        k2: (True, OutboxState.PENDING, 1),
        k3: (True, OutboxState.PENDING, 1),
        k4: (True, OutboxState.PENDING, 1),
    }
    assert claimed[k2].record_key == "row-2"
    assert all(e.created_at is not None for e in claimed.values())

    box.complete_many([k0, k2, k3], "start-9")
    box.fail_many([k4], "HTTP_422")
    found = box.entries([*keys, box.op_key("start", "never")])
    assert {k: (e.state, e.target_id, e.error) for k, e in found.items()} == {
        k0: (OutboxState.DONE, "start-9", None),
        k1: (OutboxState.DONE, "start-1", None),
        k2: (OutboxState.DONE, "start-9", None),
        k3: (OutboxState.DONE, "start-9", None),
        k4: (OutboxState.FAILED, None, "HTTP_422"),
    }
    with pytest.raises(FatalError, match="1 of the keys"):
        box.complete_many([k0, box.op_key("start", "never")], "x")


def test_concurrent_batch_claims_create_each_entry_once(engine):
    box = Outbox(engine, "rapidpro")
    keys = [(box.op_key("start", i), f"row-{i}") for i in range(50)]
    barrier = threading.Barrier(2)

    def worker() -> dict[str, bool]:
        barrier.wait()
        return {k: e.is_new for k, e in box.claim_many(keys, entity="start", run_id="r").items()}

    with ThreadPoolExecutor(2) as pool:
        first, second = (future.result() for future in [pool.submit(worker), pool.submit(worker)])
    assert all(first[k] + second[k] == 1 for k, _ in keys)  # one winner per key
    with engine.connect() as conn:
        rows = conn.execute(sa.select(outbox_table.c.op_key, outbox_table.c.attempts)).all()
    assert sorted(rows) == sorted((k, 2) for k, _ in keys)

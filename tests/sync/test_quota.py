from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from crm_sync.exceptions import QuotaExhausted
from crm_sync.sync.quota import QuotaBudget
from crm_sync.sync.staging import make_engine


class FakeClock:
    """A clock that only moves when told to, or when something sleeps."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def engine(staging_url):
    engine = make_engine(staging_url)
    yield engine
    engine.dispose()


@pytest.fixture
def clock():
    return FakeClock(datetime(2024, 5, 1, 15, 0, tzinfo=UTC))


def budget(engine, clock, **kwargs) -> QuotaBudget:
    kwargs.setdefault("daily_limit", 10)
    return QuotaBudget(engine, "salesforce", clock=clock, sleep=clock.sleep, **kwargs)


def test_usage_persists_across_budget_objects(engine, clock):
    first = budget(engine, clock)
    first.spend(3)
    second = budget(engine, clock)
    assert second.remaining() == 7
    second.spend(7)
    assert first.remaining() == 0
    assert second.used() == 10
    assert (first.spent, second.spent) == (3, 7)


def test_exhaustion_raises_with_reset_time_and_spends_nothing(engine, clock):
    quota = budget(engine, clock)
    quota.spend(8)
    with pytest.raises(QuotaExhausted) as caught:
        quota.spend(3)
    assert caught.value.api == "salesforce"
    assert caught.value.resets_at == datetime(2024, 5, 2, 0, 0, tzinfo=UTC)
    assert quota.remaining() == 2  # no partial spending
    quota.spend(2)
    with pytest.raises(QuotaExhausted):
        quota.spend()


def test_budget_resets_at_the_configured_hour_and_zone(engine, clock):
    quota = budget(engine, clock, reset_hour=0, reset_tz="America/Chicago")
    start, reset = quota.window()
    assert start == datetime(2024, 5, 1, 5, 0, tzinfo=UTC)  # midnight CDT
    assert reset == datetime(2024, 5, 2, 5, 0, tzinfo=UTC)
    quota.spend(10)
    clock.now = datetime(2024, 5, 2, 4, 59, tzinfo=UTC)
    assert quota.remaining() == 0
    clock.now = datetime(2024, 5, 2, 5, 0, tzinfo=UTC)
    assert quota.remaining() == 10
    quota.spend(4)
    assert quota.used() == 4


def test_the_stricter_of_ours_and_the_apis_wins(engine, clock):
    quota = budget(engine, clock, daily_limit=100)
    quota.spend(10)
    quota.observe(used=4990, limit=5000)  # other clients used most of the org's calls
    assert quota.remaining() == 10
    with pytest.raises(QuotaExhausted, match="API reports"):
        quota.spend(11)
    assert quota.used() == 10  # the refused spend was rolled back
    quota.spend(10)
    assert quota.remaining() == 0
    quota.observe(used=5, limit=5000)  # a fresh report: ours is stricter again
    assert quota.remaining() == 80


def test_unlimited_budget_still_counts_usage(engine, clock):
    quota = budget(engine, clock, daily_limit=None)
    quota.spend(1000)
    assert quota.remaining() is None
    assert quota.used() == 1000
    assert quota.status()["used_today"] == 1000


def test_burst_limit_waits_instead_of_failing(engine, clock):
    quota = budget(engine, clock, daily_limit=None, burst_limit=2, burst_window_s=20.0)
    started = clock.now
    for _ in range(5):
        quota.spend()
    assert clock.slept == [20.0, 20.0]
    assert clock.now - started == timedelta(seconds=40)
    assert quota.used() == 5


def test_concurrent_spenders_never_exceed_the_limit(engine):
    limit = 25

    def spender() -> int:
        quota = QuotaBudget(engine, "marketo", daily_limit=limit)
        spent = 0
        while True:
            try:
                quota.spend()
            except QuotaExhausted:
                return spent
            spent += 1

    with ThreadPoolExecutor(3) as pool:
        totals = [future.result() for future in [pool.submit(spender) for _ in range(3)]]
    assert sum(totals) == limit
    assert QuotaBudget(engine, "marketo", daily_limit=limit).used() == limit


def test_invalid_configuration_is_refused(sqlite_url):
    engine = make_engine(sqlite_url)
    with pytest.raises(ValueError, match="reset_hour"):
        QuotaBudget(engine, "x", daily_limit=1, reset_hour=24)
    with pytest.raises(ValueError, match="burst_limit"):
        QuotaBudget(engine, "x", daily_limit=1, burst_limit=0)

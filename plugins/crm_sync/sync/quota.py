"""API budgets shared by every task: a persisted daily budget and an in-process burst limit.

Daily budgets (Salesforce DailyApiRequests, Marketo 50,000 calls/day, Mobile Commons'
configured quota) hold across tasks, retries, runs and processes: usage lives in
``quota_usage`` and is spent with one conditional UPDATE (``used + n <= limit``), so
concurrent spenders can never overshoot. Running out raises :class:`QuotaExhausted`
(park the rest until ``resets_at``). Burst limits (Marketo 100 calls / 20 s, Pipedrive's
2-second windows) are waited out in-process instead.
"""

from __future__ import annotations

import logging
import threading
import time as _time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from typing import TYPE_CHECKING, Any, Protocol
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from crm_sync.exceptions import QuotaExhausted
from crm_sync.sync.schema import begin_write, quota_usage
from crm_sync.sync.staging import is_integrity_error

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

__all__ = ["Budget", "QuotaBudget"]

log = logging.getLogger(__name__)

DAILY = "daily"
REPORTED = "reported"
"""Window holding what the API itself last reported (``used`` of ``limit``)."""


class Budget(Protocol):
    """What a hook charges for its calls; ``QuotaBudget`` is the implementation."""

    def spend(self, n: int = 1) -> Any:
        """Take ``n`` calls from the budget; raise QuotaExhausted when it is spent."""

    def remaining(self) -> int | None:
        """Calls left in the current window (None: unlimited)."""

    def observe(self, used: int, limit: int) -> Any:
        """Record the API's own usage report; may raise QuotaExhausted."""


class QuotaBudget:
    """The budget of one API.

    Args:
        engine: the staging engine (where usage is persisted).
        api: the API's name, shared by every task that calls it (``salesforce``).
        daily_limit: calls allowed per day; None means unlimited (usage is still counted).
        burst_limit: calls allowed per ``burst_window_s`` in this process; None: no limit.
        burst_window_s: the sliding burst window.
        reset_hour: the hour the daily budget resets, in ``reset_tz``.
        reset_tz: an IANA zone (Marketo resets at midnight ``America/Chicago``).
        clock: returns the current aware datetime (tests inject a fake one).
        sleep: waits a number of seconds (tests inject a fake one).
    """

    def __init__(
        self,
        engine: Engine,
        api: str,
        *,
        daily_limit: int | None,
        burst_limit: int | None = None,
        burst_window_s: float = 1.0,
        reset_hour: int = 0,
        reset_tz: str = "UTC",
        clock: Callable[[], datetime] | None = None,
        sleep: Callable[[float], Any] | None = None,
    ) -> None:
        if daily_limit is not None and daily_limit < 0:
            raise ValueError("daily_limit must be zero or more")
        if burst_limit is not None and burst_limit < 1:
            raise ValueError("burst_limit must be at least 1")
        if burst_window_s <= 0:
            raise ValueError("burst_window_s must be positive")
        if not 0 <= reset_hour <= 23:
            raise ValueError("reset_hour must be 0 to 23")
        self._engine = engine
        self.api = api
        self.daily_limit = daily_limit
        self.burst_limit = burst_limit
        self.burst_window_s = burst_window_s
        self._reset_hour = reset_hour
        self._tz = ZoneInfo(reset_tz)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._sleep = sleep or _time.sleep
        self._burst: deque[tuple[float, int]] = deque()
        self._burst_lock = threading.Lock()
        self._ready_window: datetime | None = None
        self._spent_lock = threading.Lock()
        self.spent = 0
        """Calls spent through this object (for the run's api_calls report)."""

    def window(self, now: datetime | None = None) -> tuple[datetime, datetime]:
        """Return the current daily window as (start, next reset), in UTC."""
        local = (now or self._clock()).astimezone(self._tz)
        start = datetime.combine(local.date(), clock_time(self._reset_hour), tzinfo=self._tz)
        if start > local:
            start = datetime.combine(
                local.date() - timedelta(days=1), clock_time(self._reset_hour), tzinfo=self._tz
            )
        reset = datetime.combine(
            start.date() + timedelta(days=1), clock_time(self._reset_hour), tzinfo=self._tz
        )
        return start.astimezone(UTC), reset.astimezone(UTC)

    def spend(self, n: int = 1) -> None:
        """Spend ``n`` calls: all of them or none.

        Waits while the burst window is full; raises when the daily budget (ours or the
        one the API reported, whichever is stricter) cannot cover ``n`` more calls.

        Raises:
            QuotaExhausted: the daily budget is spent; ``resets_at`` says when it resets.
        """
        if n < 0:
            raise ValueError("n must be zero or more")
        if n == 0:
            return
        start, resets_at = self.window()
        self._ensure_window(start)
        with begin_write(self._engine) as conn:
            ours = sa.update(quota_usage).where(*self._pk(DAILY, start)).values(used=quota_usage.c.used + n)
            if self.daily_limit is not None:
                ours = ours.where(quota_usage.c.used + n <= self.daily_limit)
            if not conn.execute(ours).rowcount:
                raise self._exhausted(f"daily budget of {self.daily_limit} calls is spent", resets_at)
            theirs = conn.execute(
                sa.update(quota_usage)
                .where(*self._pk(REPORTED, start), quota_usage.c.used + n <= quota_usage.c.limit)
                .values(used=quota_usage.c.used + n)
            ).rowcount
            if not theirs and self._reported(conn, start) is not None:
                # Raising rolls our own increment back: nothing is spent.
                raise self._exhausted("the API reports its daily limit reached", resets_at)
        with self._spent_lock:
            self.spent += n
        self._wait_for_burst(n)

    def remaining(self) -> int | None:
        """Return the calls left today (the stricter of ours and the API's), None if unlimited."""
        start, _ = self.window()
        with self._engine.connect() as conn:
            used = self._used(conn, start)
            reported = self._reported(conn, start)
        left = [] if self.daily_limit is None else [self.daily_limit - used]
        if reported is not None:
            left.append(reported[1] - reported[0])
        return max(min(left), 0) if left else None

    def used(self) -> int:
        """Return the calls spent today by every user of this budget."""
        start, _ = self.window()
        with self._engine.connect() as conn:
            return self._used(conn, start)

    def observe(self, used: int, limit: int) -> None:
        """Record the usage the API reported (e.g. Salesforce ``Sforce-Limit-Info: api-usage=18/5000``).

        The API counts every client of the account, so its figure can be stricter than ours;
        spend() then honours both. Reports received later replace earlier ones.
        """
        if used < 0 or limit < 0:
            raise ValueError("used and limit must be zero or more")
        start, _ = self.window()
        self._ensure_window(start)
        with begin_write(self._engine) as conn:
            conn.execute(
                sa.update(quota_usage).where(*self._pk(REPORTED, start)).values(used=used, limit=limit)
            )

    def status(self) -> dict[str, Any]:
        """Return a JSON-ready view of the budget (for the run report)."""
        _start, resets_at = self.window()
        return {
            "api": self.api,
            "daily_limit": self.daily_limit,
            "used_today": self.used(),
            "remaining": self.remaining(),
            "spent_here": self.spent,
            "resets_at": resets_at.isoformat(),
        }

    def _pk(self, window: str, start: datetime) -> tuple[sa.ColumnElement[bool], ...]:
        return (
            quota_usage.c.api == self.api,
            quota_usage.c.window == window,
            quota_usage.c.window_start == start,
        )

    def _ensure_window(self, start: datetime) -> None:
        """Create today's usage rows once per window (racing creators: the primary key decides)."""
        if self._ready_window == start:
            return
        for window, limit in ((DAILY, self.daily_limit), (REPORTED, None)):
            try:
                with begin_write(self._engine) as conn:
                    if (
                        conn.execute(sa.select(quota_usage.c.used).where(*self._pk(window, start))).first()
                        is None
                    ):
                        conn.execute(
                            quota_usage.insert().values(
                                api=self.api, window=window, window_start=start, used=0, limit=limit
                            )
                        )
            except sa.exc.DBAPIError as exc:
                if not is_integrity_error(self._engine, exc):
                    raise
        if self.daily_limit is not None:
            with begin_write(self._engine) as conn:  # keep the configured limit visible in the table
                conn.execute(
                    sa.update(quota_usage).where(*self._pk(DAILY, start)).values(limit=self.daily_limit)
                )
        self._ready_window = start

    def _used(self, conn: Connection, start: datetime) -> int:
        used = conn.execute(sa.select(quota_usage.c.used).where(*self._pk(DAILY, start))).scalar()
        return int(used or 0)

    def _reported(self, conn: Connection, start: datetime) -> tuple[int, int] | None:
        row = conn.execute(
            sa.select(quota_usage.c.used, quota_usage.c.limit).where(
                *self._pk(REPORTED, start), quota_usage.c.limit.is_not(None)
            )
        ).first()
        return (int(row.used), int(row.limit)) if row is not None else None

    def _exhausted(self, reason: str, resets_at: datetime) -> QuotaExhausted:
        log.warning("%s quota exhausted: %s; resets at %s", self.api, reason, resets_at.isoformat())
        return QuotaExhausted(
            f"{self.api}: {reason}; resets at {resets_at.isoformat()}", api=self.api, resets_at=resets_at
        )

    def _wait_for_burst(self, n: int) -> None:
        if self.burst_limit is None:
            return
        with self._burst_lock:
            while True:
                now = self._clock().timestamp()
                while self._burst and self._burst[0][0] <= now - self.burst_window_s:
                    self._burst.popleft()
                in_window = sum(count for _, count in self._burst)
                # A single spend larger than the limit goes through once the window is empty.
                if not self._burst or in_window + n <= self.burst_limit:
                    self._burst.append((now, n))
                    return
                self._sleep(max(self._burst[0][0] + self.burst_window_s - now, 0.0) or 0.001)

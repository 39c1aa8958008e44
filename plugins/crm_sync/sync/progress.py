"""Progress lines at a steady pace for long work: done / total, rate, ETA and extras."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["Progress", "format_duration"]


class Progress:
    """Log how far a long job has got, at most once every ``every_s`` seconds.

    A line reads ``stage contacts: 120,000/1,000,000 (12.0%), 20,000/s, ETA 44s, budget
    4,321 left``; the part after the ETA comes from ``extra``. Usable as a context manager
    (``finish()`` on exit). Thread-safe.

    Args:
        total: the expected count, or None when unknown (no percentage or ETA then).
        label: what is being done, e.g. ``stage contacts``.
        logger: where lines go (default: the ``crm_sync.progress`` logger).
        every_s: the minimum time between two lines.
        clock: returns monotonic seconds (tests inject a fake one).
        extra: returns a short text appended to each line (e.g. API budget left).
    """

    def __init__(
        self,
        total: int | None,
        label: str,
        *,
        logger: logging.Logger | None = None,
        every_s: float = 10.0,
        clock: Callable[[], float] | None = None,
        extra: Callable[[], str] | None = None,
    ) -> None:
        if total is not None and total < 0:
            raise ValueError("total must be zero or more")
        self.total = total
        self.label = label
        self.done = 0
        self._log = logger or logging.getLogger("crm_sync.progress")
        self._every_s = every_s
        self._clock = clock or time.monotonic
        self._extra = extra
        self._started = self._clock()
        self._last_line = self._started
        self._finished = False
        self._lock = threading.Lock()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.finish()

    def advance(self, n: int = 1) -> None:
        """Count ``n`` more items done; log a line if ``every_s`` has passed since the last."""
        with self._lock:
            self.done += n
            now = self._clock()
            if now - self._last_line < self._every_s:
                return
            self._last_line = now
            line = self._line(now)
        self._log.info("%s", line)

    def finish(self) -> None:
        """Log the final line (once)."""
        with self._lock:
            if self._finished:
                return
            self._finished = True
            elapsed = self._clock() - self._started
            rate = self.done / elapsed if elapsed > 0 else 0.0
            of_total = f"/{self.total:,}" if self.total is not None else ""
            took = format_duration(elapsed)
            line = f"{self.label}: finished {self.done:,}{of_total} in {took} ({_rate(rate)})"
            line += self._extra_text()
        self._log.info("%s", line)

    def _line(self, now: float) -> str:
        elapsed = now - self._started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        parts = [f"{self.label}: {self.done:,}"]
        if self.total is not None:
            share = self.done / self.total if self.total else 1.0
            parts[0] += f"/{self.total:,} ({share:.1%})"
        parts.append(_rate(rate))
        if self.total is not None:
            left = max(self.total - self.done, 0)
            parts.append(f"ETA {format_duration(left / rate)}" if rate > 0 else "ETA unknown")
        return ", ".join(parts) + self._extra_text()

    def _extra_text(self) -> str:
        if self._extra is None:
            return ""
        text = self._extra()
        return f", {text}" if text else ""


def _rate(per_second: float) -> str:
    # Slow pushes (a few API calls a second) need the decimal; bulk loads do not.
    return f"{per_second:,.1f}/s" if per_second < 10 else f"{per_second:,.0f}/s"


def format_duration(seconds: float) -> str:
    """Format seconds as ``45s``, ``3m05s`` or ``2h07m``."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"

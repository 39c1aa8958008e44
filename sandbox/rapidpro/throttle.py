"""DRF-style sliding-window throttling: N requests per window per workspace and scope."""

from __future__ import annotations

import math
import time
from collections import deque

from sandbox.rapidpro.errors import ApiError


class SlidingWindow:
    """Remembers request times per key and refuses the request over the limit."""

    def __init__(self) -> None:
        self._history: dict[tuple[str, str], deque[float]] = {}

    def reset(self) -> None:
        """Forget every request."""
        self._history.clear()

    def check(self, key: tuple[str, str], limit: int | None, window_s: float) -> None:
        """Count one request under ``key``.

        Raises:
            ApiError: 429 ``{"detail": "Request was throttled. Expected available in N seconds."}``
                with ``Retry-After: N`` (DRF's throttled response) when the limit is reached.
        """
        if limit is None:
            return
        now = time.monotonic()
        history = self._history.setdefault(key, deque())
        while history and history[0] <= now - window_s:
            history.popleft()
        if len(history) >= limit:
            oldest = history[0] if history else now
            wait = max(math.ceil(oldest + window_s - now), 1)
            raise throttled(wait)
        history.append(now)


def throttled(wait: int) -> ApiError:
    """DRF's 429 answer for a wait of ``wait`` seconds."""
    unit = "second" if wait == 1 else "seconds"
    return ApiError(
        429,
        {"detail": f"Request was throttled. Expected available in {wait} {unit}."},
        {"Retry-After": str(wait)},
    )

"""A sliding-window rate limiter per principal (used for refund creation, OWASP API4/API6).

``SlidingWindowLimiter(limit, window_seconds, clock)`` admits at most ``limit`` calls per key in
any window of ``window_seconds``: it keeps the admission times of each key (at most ``limit`` of
them) and refuses a call while ``limit`` admissions are younger than the window. A refusal says
when the oldest of those leaves the window (``Retry-After``, whole seconds, at least 1). Refused
calls are not counted, so a client that waits as told is admitted.

In-process: each API process counts on its own, so N processes behind a load balancer admit up
to N × limit per window. For a hard global limit, keep the counters in Redis (a sorted set per
key with ZREMRANGEBYSCORE / ZCARD / ZADD in one MULTI, or a Lua script) behind this same
``hit`` interface.

The clock is injected (``clock.now()``), so tests move time instead of sleeping.
"""

from __future__ import annotations

import math
import re
import threading
from collections import deque
from datetime import datetime, timedelta

from payback.clock import Clock

_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d+\s*)?(second|minute|hour|day)s?\s*$")


def parse_rate(text: str) -> tuple[int, int]:
    """``"30/minute"`` → (30, 60); ``"100/5 minutes"`` → (100, 300). Raises ValueError."""
    match = _RATE.match(text.lower())
    if not match or int(match.group(1)) < 1:
        raise ValueError(f"rate limit {text!r}: expected '<count>/<unit>' with count >= 1 and "
                         f"unit one of {', '.join(_UNITS)} (e.g. '30/minute')")
    per = int(match.group(2)) if match.group(2) else 1
    if per < 1:
        raise ValueError(f"rate limit {text!r}: the window must be at least one {match.group(3)}")
    return int(match.group(1)), per * _UNITS[match.group(3)]


class SlidingWindowLimiter:
    def __init__(self, limit: int, window_seconds: int, clock: Clock) -> None:
        if limit < 1 or window_seconds < 1:
            raise ValueError("limit and window must be positive")
        self.limit = limit
        self.window = timedelta(seconds=window_seconds)
        self.clock = clock
        self._hits: dict[str, deque[datetime]] = {}
        self._lock = threading.Lock()
        self._prune_at = 1024  # prune when this many keys are tracked (amortised O(1) per hit)

    @classmethod
    def from_rate(cls, rate: str, clock: Clock) -> SlidingWindowLimiter:
        return cls(*parse_rate(rate), clock=clock)

    def hit(self, key: str) -> int | None:
        """Count one call for ``key``: None when admitted, else the seconds to wait."""
        now = self.clock.now()
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                wait = (hits[0] + self.window - now).total_seconds()
                return max(1, math.ceil(wait))
            hits.append(now)
            self._prune(now)
            return None

    def _prune(self, now: datetime) -> None:
        """Forget keys with no call in the window, so memory follows active callers only."""
        if len(self._hits) < self._prune_at:
            return
        for key in [k for k, h in self._hits.items() if not h or h[-1] <= now - self.window]:
            del self._hits[key]
        self._prune_at = max(1024, 2 * len(self._hits))

"""Pacing for the sender: a token bucket for LINE's rate limit (with an optional hard cap on
every sliding window), and exponential backoff with full jitter for retries. Pure asyncio; no
knowledge of LINE or the store."""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable


class TokenBucket:
    """At most RATE acquisitions a second on average, bursts of at most BURST.

    With WINDOW (seconds) set, also never more than max(1, floor(RATE × WINDOW)) acquisitions
    in any sliding window of WINDOW seconds (half-open: [t, t + WINDOW)). The bucket alone
    admits RATE × T + BURST in any T seconds, so a burst after a stall would put more than
    the per-second bound into one second; the window cap makes the bound exact while the
    bucket keeps the requests evenly spaced. GUARD (seconds) lengthens the window the cap
    checks, so that an observer whose timestamps lag this clock's by up to GUARD (the event
    loop's scheduling, the network) still never sees more than the cap in one WINDOW. CLOCK
    and SLEEP are injectable for tests."""

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        window: float | None = None,
        guard: float = 0.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("a token bucket needs rate > 0")
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate / 20)
        self.window = window
        self.window_cap = max(1, math.floor(rate * window)) if window is not None else 0
        self.guard = guard
        self._tokens = self.burst
        self._clock = clock
        self._sleep = sleep
        self._last = clock()
        self._recent: deque[float] = deque(maxlen=self.window_cap or 1)
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = self._clock()
                self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
                self._last = now
                if self.window is not None and len(self._recent) == self.window_cap:
                    opens = self._recent[0] + self.window + self.guard
                    if now < opens:
                        # The window starting at the oldest kept acquisition is full.
                        await self._sleep(opens - now)
                        continue
                if self._tokens >= 1:
                    self._tokens -= 1
                    if self.window is not None:
                        self._recent.append(now)
                    return
                await self._sleep((1 - self._tokens) / self.rate)


def backoff(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter: uniform(0, min(cap, base * 2**attempt))."""
    return rng.uniform(0, min(cap, base * (2 ** min(attempt, 30))))

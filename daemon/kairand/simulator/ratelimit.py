"""Per-endpoint token buckets with LINE's default rates (docs/line-facts.md "Rate limits")."""

from __future__ import annotations

from dataclasses import dataclass

from kairand.simulator.clock import Clock

# requests per second; LINE's published per-channel limits.
DEFAULT_RATES: dict[str, float] = {
    "multicast": 200.0,
    "push": 2000.0,
    "reply": 2000.0,
    "profile": 2000.0,
    "quota": 2000.0,
    "bot_info": 2000.0,
    "richmenu_link": 2000.0,
    "richmenu_other": 2000.0,
    "richmenu_create": 100.0 / 3600.0,  # 100 an hour
}
# Hourly limits allow their whole hour's worth at once.
DEFAULT_CAPACITIES: dict[str, float] = {"richmenu_create": 100.0}


@dataclass(slots=True)
class TokenBucket:
    """Refills continuously at `rate` tokens/s up to `capacity`; one request takes one token."""

    rate: float
    capacity: float
    clock: Clock
    tokens: float = -1.0
    updated: float = 0.0

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.capacity < 1:
            raise ValueError("a token bucket needs rate > 0 and capacity >= 1")
        self.tokens = self.capacity
        self.updated = self.clock.now()

    def try_take(self) -> bool:
        now = self.clock.now()
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class RateLimiter:
    """One bucket per endpoint group. `burst_seconds` sets capacity = max(1, rate * seconds)."""

    def __init__(
        self, clock: Clock, rates: dict[str, float] | None = None, burst_seconds: float = 1.0
    ) -> None:
        self.rates = {**DEFAULT_RATES, **(rates or {})}
        self._buckets = {
            name: TokenBucket(
                rate,
                DEFAULT_CAPACITIES.get(name, max(1.0, rate * burst_seconds))
                if name not in (rates or {})
                else max(1.0, rate * burst_seconds),
                clock,
            )
            for name, rate in self.rates.items()
        }

    def allow(self, endpoint: str) -> bool:
        bucket = self._buckets.get(endpoint)
        return True if bucket is None else bucket.try_take()

"""Seeded fault injection for the Messaging API: latency, 5xx, hangs, and "accepted but the
response is lost" (the case retry keys exist for). The same seed and the same request order give
the same faults."""

from __future__ import annotations

import enum
import random
from collections import deque
from dataclasses import dataclass


class FaultKind(enum.StrEnum):
    NONE = "none"
    ERROR = "error"  # 500 before anything happens: nothing sent, key not remembered
    TIMEOUT = "timeout"  # the server hangs past the client's timeout; nothing sent
    LOST = "lost"  # sent and key remembered, but the answer never reaches the client


@dataclass(frozen=True, slots=True)
class FaultProfile:
    """What can go wrong and how often. Ratios are per request, drawn in arrival order."""

    latency_min_ms: float = 0.0
    latency_max_ms: float = 0.0
    error_ratio: float = 0.0
    timeout_ratio: float = 0.0
    lost_ratio: float = 0.0
    hang_seconds: float = 30.0  # longer than any sane client timeout
    lost_mode: str = "drop"  # "drop" closes the connection; "500" answers a 500
    seed: int = 0

    def __post_init__(self) -> None:
        total = self.error_ratio + self.timeout_ratio + self.lost_ratio
        if (
            not 0.0 <= total <= 1.0
            or min(self.error_ratio, self.timeout_ratio, self.lost_ratio) < 0
        ):
            raise ValueError("fault ratios must be >= 0 and sum to at most 1")
        if self.latency_max_ms < self.latency_min_ms or self.latency_min_ms < 0:
            raise ValueError("latency range must satisfy 0 <= min <= max")
        if self.lost_mode not in ("drop", "500"):
            raise ValueError("lost_mode must be 'drop' or '500'")

    @property
    def active(self) -> bool:
        """False for a fault-free profile (the server then skips drawing decisions)."""
        return bool(
            self.latency_max_ms or self.error_ratio or self.timeout_ratio or self.lost_ratio
        )


PROFILES: dict[str, FaultProfile] = {
    "none": FaultProfile(),
    "realistic": FaultProfile(latency_min_ms=50, latency_max_ms=150, error_ratio=0.002),
    "flaky": FaultProfile(
        latency_min_ms=50, latency_max_ms=150, error_ratio=0.05, timeout_ratio=0.01, lost_ratio=0.02
    ),
    "slow": FaultProfile(latency_min_ms=400, latency_max_ms=1500),
}


@dataclass(frozen=True, slots=True)
class FaultDecision:
    kind: FaultKind
    latency_s: float


class FaultInjector:
    def __init__(self, profile: FaultProfile) -> None:
        self.profile = profile
        self._rng = random.Random(profile.seed)
        self.history: deque[FaultDecision] = deque(maxlen=10_000)

    def decide(self) -> FaultDecision:
        p = self.profile
        roll = self._rng.random()
        latency = self._rng.uniform(p.latency_min_ms, p.latency_max_ms) / 1000.0
        if roll < p.error_ratio:
            kind = FaultKind.ERROR
        elif roll < p.error_ratio + p.timeout_ratio:
            kind = FaultKind.TIMEOUT
        elif roll < p.error_ratio + p.timeout_ratio + p.lost_ratio:
            kind = FaultKind.LOST
        else:
            kind = FaultKind.NONE
        decision = FaultDecision(kind, latency)
        self.history.append(decision)
        return decision

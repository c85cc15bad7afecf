"""Simulated time. Everything LINE measures in time (reply-token expiry, retry-key memory,
token buckets, monthly quota, webhook timestamps) reads one injectable clock, so tests can jump
24 hours ahead without waiting."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the Unix epoch, in simulated time."""
        ...


class RealClock:
    """Wall-clock time, for the CLI and the demo."""

    def now(self) -> float:
        return time.time()


class ManualClock:
    """Time that moves only when told to (tests, deterministic benchmarks)."""

    def __init__(self, start: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("simulated time cannot go backwards")
        self._now += seconds

    def set(self, epoch_seconds: float) -> None:
        self._now = epoch_seconds

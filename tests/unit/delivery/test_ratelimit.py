"""The sender's pacing, on an injected clock: no sliding 1-second window ever holds more
requests than LINE's per-second bound, even when the event loop stalls and the bucket refills."""

from __future__ import annotations

import asyncio
import random

import pytest

from kairand.delivery.ratelimit import TokenBucket

RATE = 200.0


class FakeTime:
    """A clock that moves only when someone sleeps or works; sleeps wake up a little late
    now and then, as on a loaded machine."""

    def __init__(self, seed: int) -> None:
        self.now = 1000.0
        self.rng = random.Random(seed)

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        if self.rng.random() < 0.05:
            self.now += self.rng.uniform(0.0, 0.01)  # woke up late
        await asyncio.sleep(0)


async def drive(
    bucket: TokenBucket, fake: FakeTime, total: int, stalls: bool, lag: float = 0.0
) -> list[float]:
    """Eight concurrent senders acquire TOTAL times; with STALLS the loop is sometimes busy
    elsewhere for up to 0.6 s between requests (the bucket refills meanwhile). Each request
    is seen up to LAG seconds after its acquisition (scheduling, the network)."""
    stamps: list[float] = []
    remaining = [total]
    seen = random.Random(7)

    async def sender() -> None:
        while remaining[0] > 0:
            remaining[0] -= 1
            await bucket.acquire()
            stamps.append(fake.now + seen.uniform(0.0, lag))
            if stalls and fake.rng.random() < 0.01:
                fake.now += fake.rng.uniform(0.02, 0.6)
            await asyncio.sleep(0)

    await asyncio.gather(*(sender() for _ in range(8)))
    return sorted(stamps)


def busiest_window(stamps: list[float], window: float = 1.0) -> int:
    """The most requests in any half-open window [t, t + window): the busiest window can
    always be slid to start at a request, so checking each request's window checks them all."""
    busiest, j = 0, 0
    for i, t in enumerate(stamps):
        while j < len(stamps) and stamps[j] < t + window:
            j += 1
        busiest = max(busiest, j - i)
    return busiest


@pytest.mark.req("N4")
@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_no_sliding_window_exceeds_the_bound(seed: int) -> None:
    fake = FakeTime(seed)
    bucket = TokenBucket(RATE, clock=fake.clock, window=1.0, sleep=fake.sleep)
    stamps = await drive(bucket, fake, 6000, stalls=True)
    assert len(stamps) == 6000
    assert busiest_window(stamps) <= RATE
    # The cap costs no throughput when nothing stalls: 4,000 requests in about 20 s.
    fake = FakeTime(seed)
    bucket = TokenBucket(RATE, clock=fake.clock, window=1.0, sleep=fake.sleep)
    stamps = await drive(bucket, fake, 4000, stalls=False)
    assert busiest_window(stamps) <= RATE
    assert (len(stamps) - 1) / (stamps[-1] - stamps[0]) >= 0.97 * RATE


@pytest.mark.req("N4")
async def test_the_guard_covers_an_observer_that_lags() -> None:
    """Requests seen up to 5 ms after their acquisition, in an order that may differ from
    it: with the sender's 5 ms guard no window seen holds more than the bound; without the
    guard, the same run shows one over it (so the check can fail)."""
    fake = FakeTime(4)
    bucket = TokenBucket(RATE, clock=fake.clock, window=1.0, guard=0.005, sleep=fake.sleep)
    assert busiest_window(await drive(bucket, fake, 6000, stalls=True, lag=0.005)) <= RATE
    fake = FakeTime(4)
    bucket = TokenBucket(RATE, clock=fake.clock, window=1.0, sleep=fake.sleep)
    assert busiest_window(await drive(bucket, fake, 6000, stalls=True, lag=0.005)) > RATE


async def test_the_bucket_alone_lets_a_burst_into_one_second() -> None:
    """Why the window cap exists (and that the check above can fail): without it, the burst
    the bucket saves during a stall goes out on top of a full second's worth."""
    fake = FakeTime(1)
    bucket = TokenBucket(RATE, clock=fake.clock, sleep=fake.sleep)
    stamps = await drive(bucket, fake, 6000, stalls=True)
    assert busiest_window(stamps) > RATE


def test_low_rates_keep_at_least_one_per_window() -> None:
    assert TokenBucket(0.5, burst=3, window=1.0).window_cap == 1
    with pytest.raises(ValueError):
        TokenBucket(0.0)

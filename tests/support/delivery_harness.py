"""Shared helpers for the delivery tests: a population, the LINE simulator, a sender."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from kairand.config import DeliverySection
from kairand.delivery import service
from kairand.delivery.model import TERMINAL, DeliveryContent, Status
from kairand.delivery.sender import Sender
from kairand.line.client import LineApi, line_api
from kairand.segments.model import SegmentFilter
from kairand.simulator import FaultProfile, Simulator, SimulatorConfig
from kairand.store import synthetic
from kairand.store.database import Store

AREAS = ("asahi", "minato", "wakaba")
IN_SEGMENT = SegmentFilter.model_validate(
    {"conditions": [{"question": "area", "any_of": ["asahi", "minato"]}]}
)


def uid(i: int) -> str:
    return f"U{i:032x}"


def populate(store: Store, n: int) -> set[str]:
    """N residents, areas cycling asahi/minato/wakaba, every 10th stopped, every 7th not
    registered. Returns the LINE ids IN_SEGMENT selects."""
    rows = []
    expected = set()
    for i in range(n):
        area = AREAS[i % 3]
        stopped = i % 10 == 9
        registered = i % 7 != 6
        rows.append(synthetic.SyntheticResident(uid(i), registered, stopped, {"area": [area]}))
        if area != "wakaba" and not stopped and registered:
            expected.add(uid(i))
    store.write_sync(synthetic.insert_residents, rows, int(time.time()))
    return expected


def fast_config(**kw: float) -> DeliverySection:
    base: dict[str, Any] = {
        "multicast_rate_per_second": 150.0,  # under the simulator 200/s
        "concurrency": 4,
        "retry_base_seconds": 0.01,
        "retry_max_seconds": 0.05,
        "poll_seconds": 0.05,
    }
    base.update(kw)
    return DeliverySection(**base)


@dataclass(frozen=True)
class Request:
    request_id: str
    retry_key: str | None
    to: list[str]
    texts: tuple[str, ...]


class SimView:
    """What the tests look at in the simulator."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    @property
    def multicasts(self) -> list[Request]:
        """Accepted multicasts in order, with their recipients (all residents follow)."""
        out: dict[str, Request] = {}
        for r in self.sim.ledger.find(kind="multicast"):
            if r.request_id not in out:
                out[r.request_id] = Request(r.request_id, r.retry_key, [], r.texts)
            out[r.request_id].to.append(r.user_id)
        return list(out.values())

    def received(self) -> Counter[str]:
        return self.sim.ledger.recipients(kind="multicast")

    @property
    def requests(self) -> int:
        return self.sim.platform.counters.get("multicast", 0)

    def set_faults(self, profile: FaultProfile) -> None:
        self.sim.platform.set_faults(profile)

    @property
    def usage(self) -> int:
        return self.sim.platform.current_usage()

    def set_quota(self, limit: int | None) -> None:
        self.sim.platform.quota_limit = limit


@dataclass
class Line:
    sim: SimView
    api: LineApi
    url: str


@contextlib.asynccontextmanager
async def simulator(
    followers: int,
    client_timeout: float = 2.0,
    faults: FaultProfile | None = None,
    quota_limit: int | None = None,
    seed: int = 0,
    rates: dict[str, float] | None = None,
) -> AsyncIterator[Line]:
    """The simulator, with residents uid(0..FOLLOWERS-1) following the account."""
    sim = Simulator(
        SimulatorConfig(
            seed=seed,
            population=0,
            auto_react=False,
            faults=faults or FaultProfile(),
            quota_limit=quota_limit,
            rates=rates,
            burst_seconds=0.2 if rates else 1.0,
        )
    )
    async with sim:
        for i in range(followers):
            sim.platform.add_follower({"userId": uid(i), "displayName": "住民"})
        async with line_api(sim.api_url, sim.config.access_token, client_timeout) as api:
            yield Line(SimView(sim), api, sim.api_url)


async def approved(
    store: Store,
    segment: SegmentFilter = IN_SEGMENT,
    *,
    urgent: bool = False,
    messages: tuple[str, ...] = ("お知らせです。",),
    confirm: bool = False,
    **kw,
) -> int:
    content = DeliveryContent(
        title="テスト配信", messages=messages, segment=segment, urgent=urgent, **kw
    )
    did = await service.create_draft(store, "tanaka", content)
    await service.submit(store, did, "tanaka")
    await service.approve(store, did, "suzuki", confirm_over_quota=confirm)
    return did


async def run_sender(
    sender: Sender,
    until: Callable[[], bool] | None = None,
    *,
    store: Store | None = None,
    delivery_ids: tuple[int, ...] = (),
    limit_seconds: float = 20.0,
) -> None:
    """Run SENDER until UNTIL() or every delivery in DELIVERY_IDS is terminal/paused."""
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    deadline = time.monotonic() + limit_seconds
    try:
        while time.monotonic() < deadline:
            if task.done():
                task.result()
            if until is not None and until():
                return
            if store is not None and delivery_ids:
                views = [await service.get(store, d) for d in delivery_ids]
                if all(v.status in TERMINAL or v.status == Status.quota_exhausted for v in views):
                    return
            await asyncio.sleep(0.02)
        raise AssertionError("sender did not finish in time")
    finally:
        stop.set()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

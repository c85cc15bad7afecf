"""An urgent alert sent through the API starts at once: the route wakes the delivery sender
(kairand.runtime.DELIVERY_WAKE) instead of leaving it to its next poll. The sender here polls
only every 60 s, and the test proves the wake by the sender's own counter (a wait that ended by
the signal, not by the poll interval) — no timing assertion."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from kairand.api.app import serve
from kairand.api.client import connect
from kairand.config import Config
from kairand.delivery import service as delivery_service
from kairand.delivery.model import Status
from kairand.delivery.sender import Sender
from kairand.store.database import Store
from tests.support.api_helpers import header_resolver
from tests.support.delivery_harness import fast_config, simulator
from tests.support.programs_support import FILLED, KINDERGARTEN, populate, setup_program

N = 90


async def _until(condition: object, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while not await condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


@pytest.mark.req("K1")
async def test_an_alert_through_the_api_wakes_the_sender_at_once(
    config: Config, store: Store
) -> None:
    tid = await setup_program(store)
    population = populate(store, N)
    wake = asyncio.Event()
    async with simulator(N) as line:
        sender = Sender(store, line.api, fast_config(poll_seconds=60.0), wake=wake)
        stop = asyncio.Event()
        task = asyncio.create_task(sender.run(stop))
        try:
            async with (
                serve(config, store, None, header_resolver, wake=wake),
                connect(config.api.socket) as api,
            ):

                async def idle() -> bool:
                    return sender.idle_waits >= 1

                await _until(idle)  # nothing due: the sender waits for its 60 s poll
                assert sender.woken == 0
                body = {
                    "template_id": tid,
                    "institution": "tanpopo",
                    "districts": list(KINDERGARTEN),
                    "values": FILLED,
                }
                r = await api.as_user("yamada").post("/v1/alerts", body)
                assert r.status == 201, r.body
                delivery_id = r.body["delivery_id"]

                async def sent() -> bool:
                    view = await delivery_service.get(store, delivery_id)
                    return view.status == Status.sent

                await _until(sent)
            # The wait ended by the route's signal, not by the poll interval.
            assert sender.woken >= 1
        finally:
            stop.set()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        assert set(line.sim.received()) == population.expected

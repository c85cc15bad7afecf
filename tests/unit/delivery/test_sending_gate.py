"""Deferrable work keeps out of a delivery's way: the audience index build and the retention
pass wait while the sender sends (kairand.runtime.SendingGate), and never longer than a limit."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp import web

from kairand.config import Config
from kairand.daemon import build_app
from kairand.delivery import audience_worker, service
from kairand.delivery.audience import shared_index
from kairand.delivery.model import Status
from kairand.delivery.sender import Sender
from kairand.retention import worker as retention_worker
from kairand.runtime import CONFIG, SENDING_GATE, STOPPING, STORE, SendingGate
from kairand.store.database import Store
from tests.support.delivery_harness import approved, fast_config, populate, run_sender, simulator


async def wait_for(condition: Callable[[], bool], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def component_app(
    config: Config, store: Store, component: Callable[[web.Application], AsyncIterator[None]]
) -> AsyncIterator[tuple[web.Application, SendingGate]]:
    from kairand.daemon import _tasks_ctx

    gate = SendingGate(sender_present=True)
    app = web.Application()
    app[CONFIG] = config
    app[STORE] = store
    app[STOPPING] = asyncio.Event()
    app[SENDING_GATE] = gate
    app.cleanup_ctx.append(_tasks_ctx)
    app.cleanup_ctx.append(component)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        yield app, gate
    finally:
        app[STOPPING].set()
        await runner.cleanup()


@pytest.mark.req("N4")
async def test_index_build_waits_for_the_sender(config: Config, store: Store) -> None:
    populate(store, 30)
    async with component_app(config, store, audience_worker.audience_index_component) as (
        _,
        gate,
    ):
        await wait_for(lambda: gate.waiting == 1)
        assert shared_index(store).index.applied == -1  # not built while sending
        gate.idle()
        await wait_for(lambda: shared_index(store).index.applied >= 0)
        assert len(shared_index(store).index.eligible) > 0


@pytest.mark.req("N4")
async def test_retention_pass_waits_for_the_sender(config: Config, store: Store) -> None:
    async with component_app(config, store, retention_worker.retention_component) as (app, gate):
        await wait_for(lambda: gate.waiting == 1)
        assert app[retention_worker.RUNS] == []
        gate.idle()
        await wait_for(lambda: len(app[retention_worker.RUNS]) == 1)


async def test_a_closed_gate_delays_but_never_starves() -> None:
    gate = SendingGate(sender_present=True)
    assert not gate.is_open
    assert await gate.quiet(0.01) is False
    assert gate.waiting == 0
    assert await SendingGate(sender_present=False).quiet(0.01) is True


@pytest.mark.req("N4")
async def test_sender_closes_the_gate_while_it_sends(store: Store) -> None:
    expected = populate(store, 1200)
    did = await approved(store)
    events: list[tuple[str, int]] = []

    async with simulator(1200) as line:

        class Recording(SendingGate):
            def sending(self) -> None:
                events.append(("sending", len(line.sim.multicasts)))
                super().sending()

            def idle(self) -> None:
                events.append(("idle", len(line.sim.multicasts)))
                super().idle()

        gate = Recording(sender_present=True)
        sender = Sender(store, line.api, fast_config(), gate=gate)
        await run_sender(sender, until=lambda: bool(events) and events[-1][0] == "idle")
    assert events[0] == ("sending", 0)  # closed before the first request
    assert events[-1] == ("idle", -(-len(expected) // 500))  # open once every batch went
    assert gate.is_open
    assert (await service.get(store, did)).status == Status.sent


def test_the_daemon_gate_starts_closed_only_with_a_sender(config: Config, store: Store) -> None:
    assert not build_app(config, store)[SENDING_GATE].is_open
    from kairand import daemon

    original = daemon.components
    try:
        daemon.components = lambda: [audience_worker.audience_index_component]
        assert build_app(config, store)[SENDING_GATE].is_open
    finally:
        daemon.components = original

"""The delivery sender as a daemon component: runs kairand.delivery.sender.Sender while the
daemon runs (see that module for how deliveries are sent)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from kairand.delivery.sender import Sender
from kairand.runtime import CONFIG, DELIVERY_WAKE, LINE, SENDING_GATE, STOPPING, STORE, TASKS

SENDER = web.AppKey("delivery_sender", Sender)


async def delivery_component(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: run the sender until the daemon stops."""
    if DELIVERY_WAKE not in app:  # shared with the API app (kairand.api.app.api_component)
        app[DELIVERY_WAKE] = asyncio.Event()
    sender = Sender(
        app[STORE],
        app[LINE],
        app[CONFIG].delivery,
        media=app[CONFIG].media,
        wake=app[DELIVERY_WAKE],
        gate=app.get(SENDING_GATE),
    )
    app[SENDER] = sender
    stop = asyncio.Event()
    task = app[TASKS].worker("delivery-sender", lambda: sender.run(stop))

    async def follow_stopping() -> None:
        await app[STOPPING].wait()
        stop.set()

    watcher = app[TASKS].spawn(follow_stopping(), "delivery-sender-stop")
    yield
    stop.set()
    task.cancel()
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task

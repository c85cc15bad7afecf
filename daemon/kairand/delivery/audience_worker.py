"""The daemon component that keeps the audience index ready: built (or loaded from its saved
copy) at start-up, so the first count is as fast as the rest, and saved periodically, so a
restart applies only recent changes and the saved copy forgets purged residents' row ids."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from kairand.delivery.audience import save_index, warm_index
from kairand.logs import get_logger
from kairand.runtime import STOPPING, STORE, TASKS, periodic

log = get_logger(__name__)

SAVE_INTERVAL_SECONDS = 600.0


async def audience_index_component(app: web.Application) -> AsyncIterator[None]:
    store = app[STORE]

    async def run() -> None:
        seconds = await warm_index(store)
        log.info("audience_index.ready", seconds=round(seconds, 2))
        await periodic(
            "audience_index_save",
            SAVE_INTERVAL_SECONDS,
            lambda: save_index(store),
            stopping=app[STOPPING],
        )

    app[TASKS].worker("audience-index", run)
    yield

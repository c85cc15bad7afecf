"""The daemon component that keeps the audience index ready: built (or loaded from its saved
copy) at start-up, so the first count is as fast as the rest, and saved periodically, so a
restart applies only recent changes and the saved copy forgets purged residents' row ids."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from kairand.delivery.audience import save_index, warm_index
from kairand.logs import get_logger
from kairand.runtime import STOPPING, STORE, TASKS, periodic, wait_until_quiet

log = get_logger(__name__)

SAVE_INTERVAL_SECONDS = 600.0


async def audience_index_component(app: web.Application) -> AsyncIterator[None]:
    store = app[STORE]

    async def run() -> None:
        # Building from every row takes seconds of CPU at a million residents: not while a
        # delivery is going out (a count meanwhile builds it on demand).
        await wait_until_quiet(app, "audience_index_build")
        seconds = await warm_index(store)
        log.info("audience_index.ready", seconds=round(seconds, 2))
        await periodic(
            "audience_index_save",
            SAVE_INTERVAL_SECONDS,
            lambda: _save_when_quiet(app),
            stopping=app[STOPPING],
        )

    app[TASKS].worker("audience-index", run)
    yield


async def _save_when_quiet(app: web.Application) -> None:
    await wait_until_quiet(app, "audience_index_save")
    await save_index(app[STORE])

"""Builds the daemon: one aiohttp root application whose cleanup contexts own every resource.

Order: store (opened before the loop by `main`) → background tasks → LINE client → components
(audience index, webhook site, inbox worker, delivery worker, retention worker, mail
channel, staff API site) → watchdog.
Each component is a cleanup context: it starts its work before `yield` and stops it after.
The keys the components share, and the background-task helper, live in kairand.runtime: this
module only composes.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from kairand import notify
from kairand.api.app import api_component
from kairand.config import Config
from kairand.delivery.audience_worker import audience_index_component
from kairand.delivery.media import media_purge_component
from kairand.delivery.series import series_component
from kairand.delivery.worker import delivery_component
from kairand.keys import secrets
from kairand.line.client import MAX_CONNECTIONS, line_api
from kairand.line.inbox import inbox_component
from kairand.line.webhook import webhook_component
from kairand.logs import get_logger
from kairand.mail.component import mail_component
from kairand.programs.expiry import program_expiry_component
from kairand.queue.pushes import queue_component
from kairand.reservations.notices import notices_component
from kairand.retention.worker import retention_component

# The keys are re-exported for callers that drive a whole daemon (tests, bench).
from kairand.runtime import CONFIG as CONFIG
from kairand.runtime import DELIVERY_WAKE, SENDING_GATE, SendingGate, TaskGroup
from kairand.runtime import LINE as LINE
from kairand.runtime import STOPPING as STOPPING
from kairand.runtime import STORE as STORE
from kairand.runtime import TASKS as TASKS
from kairand.store.database import Store

log = get_logger(__name__)

CleanupContext = Callable[[web.Application], AsyncIterator[None]]


async def _tasks_ctx(app: web.Application) -> AsyncIterator[None]:
    app[TASKS] = TaskGroup()
    yield
    await app[TASKS].close()


async def _line_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    # The keyring reads a file (or a credential): off the event loop.
    token = await asyncio.get_running_loop().run_in_executor(
        None, secrets.get_secret, secrets.CHANNEL_ACCESS_TOKEN
    )
    async with line_api(
        config.line.api_base,
        token,
        config.line.request_timeout_seconds,
        data_base=config.line.data_base,
        # The sender's requests and the inbox's replies in flight never wait for each other.
        connections=MAX_CONNECTIONS + config.line.reply_concurrency,
    ) as api:
        app[LINE] = api
        yield


async def _watchdog_ctx(app: web.Application) -> AsyncIterator[None]:
    interval = notify.watchdog_interval()
    if interval:

        async def ping() -> None:
            while True:
                notify.notify("WATCHDOG=1")
                await asyncio.sleep(interval)

        app[TASKS].spawn(ping(), "watchdog")
    yield


def components() -> list[CleanupContext]:
    """The daemon's working parts, in start order (stopped in reverse)."""
    return [
        audience_index_component,
        webhook_component,
        inbox_component,
        delivery_component,
        series_component,
        media_purge_component,  # images past their serving period
        retention_component,
        notices_component,
        queue_component,
        program_expiry_component,
        mail_component,
        api_component,
    ]


def build_app(config: Config, store: Store) -> web.Application:
    app = web.Application()
    app[CONFIG] = config
    app[STORE] = store
    app[STOPPING] = asyncio.Event()
    app[DELIVERY_WAKE] = asyncio.Event()  # the API wakes the delivery sender with it
    app.cleanup_ctx.append(_tasks_ctx)
    app.cleanup_ctx.append(_line_ctx)
    parts = components()
    # Deferrable start-up work waits for the sender's first look (kairand.runtime.SendingGate).
    app[SENDING_GATE] = SendingGate(sender_present=delivery_component in parts)
    app.cleanup_ctx.extend(parts)
    app.cleanup_ctx.append(_watchdog_ctx)
    return app


async def run(
    config: Config, store: Store, ready: Callable[[web.Application], Any] | None = None
) -> None:
    """Start every component, report READY=1, and run until SIGTERM/SIGINT."""
    store.bind_loop()
    app = build_app(config, store)
    runner = web.AppRunner(app, handle_signals=False)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, app[STOPPING].set)
    await runner.setup()
    try:
        notify.notify("READY=1\nSTATUS=running")
        log.info("daemon.ready", training_mode=config.daemon.training_mode)
        if ready is not None:
            ready(app)
        await app[STOPPING].wait()
        log.info("daemon.stopping")
        notify.notify("STOPPING=1")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await runner.cleanup()
    log.info("daemon.stopped")

"""Signed checkpoints of the audit chain, in the background: every N entries or every hour
(config.api.audit_checkpoint_*), and once more on a clean stop so no tail stays unsigned.

A cleanup context for the application that serves the staff API (the API is what writes most
audit entries, and tests that run the API alone get their checkpoints too).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from kairand.audit import checkpoints
from kairand.logs import get_logger
from kairand.runtime import CONFIG, STORE, periodic

log = get_logger(__name__)


async def checkpoint_component(app: web.Application) -> AsyncIterator[None]:
    config, store = app[CONFIG], app[STORE]

    async def step() -> None:
        await checkpoints.maybe_checkpoint(
            store,
            every=config.api.audit_checkpoint_every,
            max_age_seconds=config.api.audit_checkpoint_seconds,
        )

    interval = min(30.0, config.api.audit_checkpoint_seconds / 4)
    task = asyncio.get_running_loop().create_task(
        periodic("audit.checkpoint", interval, step), name="audit-checkpoints"
    )
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    # Sign whatever was logged since the last checkpoint, so a clean stop leaves no tail unsigned.
    try:
        await checkpoints.maybe_checkpoint(store, every=1, max_age_seconds=0)
    except Exception as exc:
        log.error("audit.checkpoint_failed", error=type(exc).__name__)

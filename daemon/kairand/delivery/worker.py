"""The sender (work in progress)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web


async def delivery_component(app: web.Application) -> AsyncIterator[None]:
    yield

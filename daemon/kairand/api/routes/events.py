"""GET /v1/events: server-sent events for the dashboard counters and delivery progress.

Each stream looks at the store every config.api.event_interval_seconds and sends an event only
when the figures changed (`event: dashboard`, `event: delivery`); a comment line every 15 s keeps
proxies and the TUI's read timeout happy. The stream ends when the daemon stops.
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from kairand.api.http import STATE, config_of, store_of
from kairand.api.routes.dashboard import counters
from kairand.api.wire import event_of
from kairand.delivery import service
from kairand.delivery.service import DeliveryView

KEEPALIVE_SECONDS = 15.0
WATCHED = ("approved", "scheduled", "sending")
RECENT_SECONDS = 3600


def frame(event: str, data: str) -> bytes:
    return f"event: {event}\ndata: {data}\n\n".encode()


async def _deliveries(request: web.Request) -> list[DeliveryView]:
    """Deliveries whose progress staff watch: active ones and those finished in the last hour."""
    store = store_of(request)
    views: list[DeliveryView] = []
    for status in WATCHED:
        views.extend(await service.list_deliveries(store, status, 50, 0))
    seen = {v.id for v in views}
    cutoff = time.time() - RECENT_SECONDS
    for v in await service.list_deliveries(store, None, 20, 0):
        if v.id not in seen and v.finished_at is not None and v.finished_at.timestamp() >= cutoff:
            views.append(v)
    return views


async def stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    interval = config_of(request).api.event_interval_seconds
    last_dashboard = ""
    last_delivery: dict[int, str] = {}
    last_write = time.monotonic()
    try:
        while True:
            figures = (await counters(store_of(request))).model_dump_json()
            if figures != last_dashboard:
                await response.write(frame("dashboard", figures))
                last_dashboard, last_write = figures, time.monotonic()
            for view in await _deliveries(request):
                data = event_of(view).model_dump_json()
                if last_delivery.get(view.id) != data:
                    await response.write(frame("delivery", data))
                    last_delivery[view.id], last_write = data, time.monotonic()
            if time.monotonic() - last_write >= KEEPALIVE_SECONDS:
                await response.write(b": keep-alive\n\n")
                last_write = time.monotonic()
            stopping = request.app[STATE].stopping
            try:
                await asyncio.wait_for(stopping.wait(), interval)
            except TimeoutError:
                continue
            break
    except ConnectionResetError:  # the TUI went away
        pass
    return response

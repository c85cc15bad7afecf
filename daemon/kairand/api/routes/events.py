"""GET /v1/events: server-sent events for the dashboard counters and delivery progress.

Each stream looks at the store every config.api.event_interval_seconds and sends an event only
when the figures changed (`event: dashboard`, `event: delivery`); a comment line every 15 s keeps
proxies and the TUI's read timeout happy. The stream ends when the daemon stops.
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from kairand.api import schema
from kairand.api.http import STAFF, STATE, config_of, from_unix, store_of
from kairand.api.wire import dashboard_counters, event_of
from kairand.delivery import service
from kairand.delivery.service import DeliveryView
from kairand.store import deliveries as delivery_store
from kairand.store import programs as program_store
from kairand.store.database import Connection

KEEPALIVE_SECONDS = 15.0
WATCHED = ("approved", "scheduled", "sending")
RECENT_SECONDS = 3600


def _alerts_for(conn: Connection, username: str, roles: tuple[str, ...], since: int) -> list[str]:
    """Alerts sent since SINCE that USERNAME is notified of: every alert for an approver, the
    institution's own alerts for its heads."""
    out = []
    for alert in program_store.recent_alerts(conn, 20):
        if alert.created_at < since:
            continue
        if "approver" not in roles and username not in program_store.heads_of(
            conn, alert.institution
        ):
            continue
        row = delivery_store.get(conn, alert.delivery_id)
        inst = program_store.institution(conn, alert.institution)
        created = from_unix(alert.created_at)
        if row is None or inst is None or created is None:
            continue
        event = schema.AlertEvent(
            delivery_id=alert.delivery_id,
            kind=alert.kind,  # type: ignore[arg-type]
            title=row.title,
            institution_name=inst[1],
            districts=len(alert.districts),
            created_at=created,
        )
        out.append(event.model_dump_json())
    return out


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
    small_cells = config_of(request).privacy.small_cell_threshold
    mail_on = config_of(request).mail.enabled
    last_dashboard = ""
    last_delivery: dict[int, str] = {}
    last_write = time.monotonic()
    staff = request[STAFF]
    alerts_since, alerts_seen = int(time.time()), set[str]()
    try:
        while True:
            figures = (
                await dashboard_counters(store_of(request), small_cells, mail_on)
            ).model_dump_json()
            if figures != last_dashboard:
                await response.write(frame("dashboard", figures))
                last_dashboard, last_write = figures, time.monotonic()
            for view in await _deliveries(request):
                data = event_of(view).model_dump_json()
                if last_delivery.get(view.id) != data:
                    await response.write(frame("delivery", data))
                    last_delivery[view.id], last_write = data, time.monotonic()
            for data in await store_of(request).read(
                _alerts_for, staff.username, staff.roles, alerts_since
            ):
                if data not in alerts_seen:
                    alerts_seen.add(data)
                    await response.write(frame("alert", data))
                    last_write = time.monotonic()
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

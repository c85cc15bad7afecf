"""GET /v1/dashboard: today's counters, the last seven days, LINE's quota and health."""

from __future__ import annotations

import datetime as dt
import time

from aiohttp import web

from kairand.api import schema
from kairand.api.http import (
    STATE,
    config_of,
    from_unix,
    japan_today,
    line_of,
    ok,
    store_of,
)
from kairand.api.wire import dashboard_counters
from kairand.logs import get_logger
from kairand.store import stats as stats_store
from kairand.timeutil import JST

log = get_logger(__name__)


async def quota(request: web.Request) -> schema.Quota | None:
    """LINE's monthly allowance, cached (config.api.quota_cache_seconds)."""
    state = request.app[STATE]
    cached = state.quota
    ttl = config_of(request).api.quota_cache_seconds
    if cached is not None and time.monotonic() - cached[0] < ttl:
        return cached[1]
    line = line_of(request)
    if line is None:
        return None
    now = int(time.time())
    try:
        limit = await line.messaging.get_message_quota(_request_timeout=line.timeout)
        used = await line.messaging.get_message_quota_consumption(_request_timeout=line.timeout)
    except Exception as exc:  # any transport or API failure: the dashboard shows it as health
        log.warning("api.quota_failed", error=type(exc).__name__)
        await store_of(request).write(stats_store.record_line_call, False, now, type(exc).__name__)
        state.quota = (time.monotonic(), None)
        return None
    await store_of(request).write(stats_store.record_line_call, True, now)
    # The SDK parses `type` into an enum whose str() is "QuotaType.NONE": use LINE's value.
    kind = str(getattr(limit.type, "value", limit.type))
    result = schema.Quota(
        type=kind,
        limit=int(limit.value) if limit.value is not None and kind == "limited" else None,
        used=int(used.total_usage),
        checked_at=dt.datetime.now(JST),
    )
    state.quota = (time.monotonic(), result)
    return result


async def dashboard(request: web.Request) -> web.Response:
    store = store_of(request)
    today = japan_today()
    first = today - dt.timedelta(days=6)
    config = config_of(request)
    figures = await dashboard_counters(
        store, config.privacy.small_cell_threshold, config.mail.enabled
    )
    series = await store.read(stats_store.daily, first.isoformat(), today.isoformat())
    days = [
        schema.DayCount(
            day=d,
            follows=series["follow"].get(d.isoformat(), 0),
            unfollows=series["unfollow"].get(d.isoformat(), 0),
        )
        for d in (first + dt.timedelta(days=i) for i in range(7))
    ]
    q = await quota(request)
    settings = await store.read(stats_store.health_settings)
    last_ok = settings.get("line.last_ok_at")
    last_error = settings.get("line.last_error")
    error_at = last_error.get("at") if isinstance(last_error, dict) else None
    reachable: bool | None
    if last_ok is None and error_at is None:
        reachable = None
    else:
        reachable = error_at is None or (last_ok is not None and last_ok >= error_at)
    not_after = settings.get("tls.not_after")
    backup = settings.get("backup.last_ok_at")
    health = schema.Health(
        last_webhook_at=from_unix(settings.get("webhook.last_seen_at")),  # type: ignore[arg-type]
        line_reachable=reachable,
        line_last_ok_at=from_unix(last_ok),  # type: ignore[arg-type]
        line_last_error=str(last_error.get("error")) if isinstance(last_error, dict) else None,
        tls_not_after=from_unix(not_after) if isinstance(not_after, int | float) else None,
        backup_last_ok_at=from_unix(backup) if isinstance(backup, int | float) else None,
    )
    return ok(
        schema.DashboardOut(
            **figures.model_dump(),
            days=days,
            quota=q,
            health=health,
            training_mode=config_of(request).daemon.training_mode,
        )
    )

"""Routes for recurring deliveries (定期配信) and the calendar of upcoming sends."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

from aiohttp import web

from kairand.api import schema
from kairand.api.http import Handler, config_of, json_body, note, query, staff_of, store_of
from kairand.api.problems import ApiProblem
from kairand.api.wire import problem_of, service_call
from kairand.delivery import series
from kairand.delivery.errors import DeliveryError
from kairand.delivery.messages import urls_of
from kairand.store import series as series_store
from kairand.timeutil import JST


def _id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdigit() or len(raw) > 18:
        raise ApiProblem("not-found", "指定された定期配信はありません。", field="id")
    return int(raw)


def _ts(value: int | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(value, JST) if value is not None else None


def series_out(view: series.SeriesView) -> schema.SeriesOut:
    row = view.row
    return schema.SeriesOut(
        id=row.id,
        title=row.title,
        status=row.status,
        status_reason=row.status_reason,
        content=view.content,
        rule=view.rule,
        rule_text=schema.describe(view.rule),
        next_occurrences=view.next_occurrences,
        author=row.author,
        approver=row.approver,
        reject_comment=row.reject_comment,
        occurrences_done=row.occurrences_done,
        history=[
            schema.OccurrenceOut(
                at=_ts(at) or dt.datetime.now(JST), outcome=outcome, delivery_id=did, status=st
            )
            for at, outcome, did, st in view.history
        ],
        links=[url for _, url in urls_of(view.content.messages)],
        pending_change=_change_out(row),
    )


def _change_out(row: series_store.SeriesRow) -> schema.SeriesChangeOut | None:
    proposed = series.pending_view(row, time.time())
    if proposed is None or row.pending is None:
        return None
    content, rule, upcoming = proposed
    return schema.SeriesChangeOut(
        title=row.pending.title,
        content=content,
        rule=rule,
        rule_text=schema.describe(rule),
        next_occurrences=upcoming,
        proposed_by=row.pending.by,
        proposed_at=_ts(row.pending.at) or dt.datetime.now(JST),
        links=[url for _, url in urls_of(content.messages)],
    )


async def _respond(request: web.Request, series_id: int, status: int = 200) -> web.Response:
    view = await service_call(series.get(store_of(request), series_id))
    return web.json_response(text=series_out(view).model_dump_json(), status=status)


async def list_(request: web.Request) -> web.Response:
    views = await series.list_series(store_of(request))
    out = schema.SeriesList(items=[series_out(v) for v in views])
    return web.json_response(text=out.model_dump_json())


async def create(request: web.Request) -> web.Response:
    body = await json_body(request, schema.SeriesIn)
    note(request, title=body.content.title)
    new_id = await service_call(
        series.create(
            store_of(request),
            staff_of(request).username,
            body.content,
            body.rule,
            link_domains=config_of(request).links.allowed_domains,
        )
    )
    note(request, id=new_id)
    return await _respond(request, new_id, 201)


async def get(request: web.Request) -> web.Response:
    return await _respond(request, _id(request))


async def submit(request: web.Request) -> web.Response:
    series_id = _id(request)
    await json_body(request, schema.SeriesAction)
    await service_call(
        series.submit(
            store_of(request),
            series_id,
            staff_of(request).username,
            link_domains=config_of(request).links.allowed_domains,
        )
    )
    return await _respond(request, series_id)


async def approve(request: web.Request) -> web.Response:
    series_id = _id(request)
    await json_body(request, schema.SeriesAction)
    config = config_of(request)
    try:
        await series.approve(
            store_of(request),
            series_id,
            staff_of(request).username,
            link_domains=config.links.allowed_domains,
            media_public=bool(config.media.public_base_url),
        )
    except series.SelfApprovalRefused as exc:
        note(request, four_eyes="refused")
        raise ApiProblem("four-eyes", exc.message_ja, code="self_approval") from None
    except DeliveryError as exc:
        raise problem_of(exc) from None
    return await _respond(request, series_id)


async def reject(request: web.Request) -> web.Response:
    series_id = _id(request)
    body = await json_body(request, schema.RejectRequest)
    await service_call(
        series.reject(store_of(request), series_id, staff_of(request).username, body.comment)
    )
    return await _respond(request, series_id)


def _change(action: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        series_id = _id(request)
        await json_body(request, schema.SeriesAction)
        await service_call(
            series.change(store_of(request), series_id, staff_of(request).username, action)
        )
        return await _respond(request, series_id)

    return handler


class CalendarQuery(schema._In):
    days: int = 31


async def calendar(request: web.Request) -> web.Response:
    q = query(request, CalendarQuery)
    if not 1 <= q.days <= 366:
        raise ApiProblem("validation", "日数は 1〜366 で指定してください。", field="days")
    now = time.time()
    until = now + q.days * 86400
    items: list[schema.CalendarEntry] = []
    rows = await store_of(request).read(series_store.scheduled_deliveries, int(now), int(until))
    for did, title, at, status in rows:
        items.append(
            schema.CalendarEntry(
                at=dt.datetime.fromtimestamp(at, JST),
                title=title,
                kind="delivery",
                id=did,
                status=status,
            )
        )
    for view in await series.list_series(store_of(request), now):
        if view.row.status not in ("active", "pending_approval", "paused"):
            continue
        # Off the loop: the holiday tables are read from files the first time per year.
        upcoming = await asyncio.to_thread(series.next_of, view.row, now, 60)
        for at in upcoming:
            if at.timestamp() < until:
                items.append(
                    schema.CalendarEntry(
                        at=at,
                        title=view.row.title,
                        kind="series",
                        id=view.row.id,
                        status=view.row.status,
                    )
                )
    items.sort(key=lambda e: e.at)
    return web.json_response(text=schema.CalendarOut(items=items).model_dump_json())


async def update(request: web.Request) -> web.Response:
    """Change a series: in place before approval; afterwards a change awaiting approval."""
    series_id = _id(request)
    body = await json_body(request, schema.SeriesIn)
    outcome = await service_call(
        series.update(
            store_of(request),
            series_id,
            staff_of(request).username,
            body.content,
            body.rule,
            link_domains=config_of(request).links.allowed_domains,
        )
    )
    note(request, id=series_id, outcome=outcome)
    return await _respond(request, series_id)


async def approve_change(request: web.Request) -> web.Response:
    series_id = _id(request)
    await json_body(request, schema.SeriesAction)
    config = config_of(request)
    try:
        await series.approve_change(
            store_of(request),
            series_id,
            staff_of(request).username,
            link_domains=config.links.allowed_domains,
            media_public=bool(config.media.public_base_url),
        )
    except series.SelfApprovalRefused as exc:
        note(request, four_eyes="refused")
        raise ApiProblem("four-eyes", exc.message_ja, code="self_approval") from None
    except DeliveryError as exc:
        raise problem_of(exc) from None
    return await _respond(request, series_id)


async def reject_change(request: web.Request) -> web.Response:
    series_id = _id(request)
    body = await json_body(request, schema.RejectRequest)
    await service_call(
        series.reject_change(store_of(request), series_id, staff_of(request).username, body.comment)
    )
    return await _respond(request, series_id)


HANDLERS: dict[str, Handler] = {
    "series.list": list_,
    "series.create": create,
    "series.get": get,
    "series.submit": submit,
    "series.approve": approve,
    "series.reject": reject,
    "series.pause": _change("pause"),
    "series.resume": _change("resume"),
    "series.end": _change("end"),
    "calendar": calendar,
    "series.update": update,
    "series.approve_change": approve_change,
    "series.reject_change": reject_change,
}

"""Delivery routes: roles are checked by the middleware, four eyes here, the status machine and
G3 by kairand.delivery.service (whose DeliveryError becomes a 4xx problem)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web

from kairand.api import schema
from kairand.api.app import config_of, json_body, line_of, note, query, staff_of, store_of
from kairand.api.problems import ApiProblem

JST = dt.timezone(dt.timedelta(hours=9), "JST")


def _service() -> Any:
    from kairand.delivery import service

    return service


def _errors() -> Any:
    from kairand.delivery import errors

    return errors


def _path_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdigit() or len(raw) > 18:
        raise ApiProblem("not-found", "指定された配信はありません。", field="id")
    return int(raw)


def _time(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value, JST)
    return None


def _status(value: Any) -> str:
    return str(getattr(value, "value", value))


def can_self_approve(recipient_count: int | None, threshold: int) -> bool:
    """Four eyes (S7): an author may approve their own delivery only when it reaches fewer
    recipients than the configured threshold (0 = never)."""
    return threshold > 0 and recipient_count is not None and recipient_count < threshold


def summary(view: Any) -> dict[str, Any]:
    content = view.content
    return {
        "id": int(view.id),
        "title": str(content.title),
        "status": _status(view.status),
        "urgent": bool(content.urgent),
        "author": view.author,
        "approver": view.approver,
        "scheduled_at": content.scheduled_at,
        "created_at": _time(getattr(view, "created_at", None)),
        "recipient_count": view.recipient_count,
        "sent_count": int(view.sent_count or 0),
        "failed_count": int(view.failed_count or 0),
    }


def progress_of(view: Any) -> float:
    total = view.recipient_count or 0
    if not total:
        return 0.0
    return min(1.0, (int(view.sent_count or 0) + int(view.failed_count or 0)) / total)


def detail_of(view: Any, threshold: int) -> schema.DeliveryDetail:
    return schema.DeliveryDetail(
        **summary(view),
        content=view.content,
        status_reason=getattr(view, "status_reason", None),
        reject_comment=getattr(view, "reject_comment", None),
        submitted_at=_time(getattr(view, "submitted_at", None)),
        approved_at=_time(getattr(view, "approved_at", None)),
        started_at=_time(getattr(view, "started_at", None)),
        finished_at=_time(getattr(view, "finished_at", None)),
        batches_total=int(getattr(view, "batches_total", 0) or 0),
        batches_done=int(getattr(view, "batches_done", 0) or 0),
        progress=progress_of(view),
        can_self_approve=can_self_approve(view.recipient_count, threshold),
    )


def event_of(view: Any) -> schema.DeliveryEvent:
    return schema.DeliveryEvent(
        id=int(view.id),
        status=_status(view.status),
        recipient_count=view.recipient_count,
        sent_count=int(view.sent_count or 0),
        failed_count=int(view.failed_count or 0),
        progress=progress_of(view),
    )


async def _call(fn: Any, *args: Any) -> Any:
    """Run a delivery service call; its refusals become problems naming what went wrong."""
    errors = _errors()
    try:
        return await fn(*args)
    except errors.DeliveryError as exc:
        code = str(getattr(exc, "code", "") or "")
        message = (
            str(getattr(exc, "message_ja", "") or "") or "現在の状態ではこの操作はできません。"
        )
        if "not_found" in code:
            raise ApiProblem("not-found", message, code=code) from None
        if "confidential" in code:
            raise ApiProblem("validation", message, field="confidentiality", code=code) from None
        if "line" in code or "unavailable" in code:
            raise ApiProblem("line-unavailable", message, code=code) from None
        if "test_recipient" in code:
            raise ApiProblem("conflict", message, code=code) from None
        if "segment" in code:
            raise ApiProblem("validation", message, field="segment", code=code) from None
        raise ApiProblem("conflict", message, code=code or None) from None


async def _view(request: web.Request, delivery_id: int) -> Any:
    view = await _call(_service().get, store_of(request), delivery_id)
    if view is None:
        raise ApiProblem("not-found", "指定された配信はありません。", field="id")
    return view


async def list_(request: web.Request) -> web.Response:
    q = query(request, schema.DeliveryQuery)
    views = await _call(
        _service().list_deliveries, store_of(request), q.status, q.limit + 1, q.offset
    )
    more = len(views) > q.limit
    items = [schema.DeliverySummary(**summary(v)) for v in views[: q.limit]]
    page = schema.DeliveryPage(
        items=items,
        limit=q.limit,
        offset=q.offset,
        next_offset=q.offset + q.limit if more else None,
    )
    return web.json_response(text=page.model_dump_json())


async def create(request: web.Request) -> web.Response:
    content = await json_body(request, schema.DeliveryContent)
    note(request, title=content.title)  # class-1 public text; never recipients or answers
    new_id = await _call(
        _service().create_draft, store_of(request), staff_of(request).username, content
    )
    note(request, id=int(new_id))
    return web.json_response(text=schema.Created(id=int(new_id)).model_dump_json(), status=201)


async def detail(request: web.Request) -> web.Response:
    view = await _view(request, _path_id(request))
    threshold = config_of(request).delivery.self_approval_threshold
    return web.json_response(text=detail_of(view, threshold).model_dump_json())


async def _respond(request: web.Request, delivery_id: int) -> web.Response:
    view = await _view(request, delivery_id)
    threshold = config_of(request).delivery.self_approval_threshold
    return web.json_response(text=detail_of(view, threshold).model_dump_json())


async def update(request: web.Request) -> web.Response:
    delivery_id = _path_id(request)
    content = await json_body(request, schema.DeliveryContent)
    note(request, title=content.title)
    await _call(
        _service().update_draft, store_of(request), delivery_id, content, staff_of(request).username
    )
    return await _respond(request, delivery_id)


async def test_send(request: web.Request) -> web.Response:
    from kairand.api.views import Empty

    delivery_id = _path_id(request)
    await json_body(request, Empty)
    line = line_of(request)
    if line is None:
        raise ApiProblem("line-unavailable", "LINE との接続が設定されていません。")
    sent = await _call(
        _service().test_send, store_of(request), line, delivery_id, staff_of(request).username
    )
    note(request, sent=int(sent))
    return web.json_response(text=schema.TestSendResult(sent=int(sent)).model_dump_json())


async def submit(request: web.Request) -> web.Response:
    from kairand.api.views import Empty

    delivery_id = _path_id(request)
    await json_body(request, Empty)
    await _call(_service().submit, store_of(request), delivery_id, staff_of(request).username)
    return await _respond(request, delivery_id)


async def approve(request: web.Request) -> web.Response:
    from kairand.api.views import Empty

    delivery_id = _path_id(request)
    await json_body(request, Empty)
    me = staff_of(request).username
    view = await _view(request, delivery_id)
    threshold = config_of(request).delivery.self_approval_threshold
    if view.author == me and not can_self_approve(view.recipient_count, threshold):
        note(request, four_eyes="refused")
        raise ApiProblem(
            "four-eyes",
            "配信の作成者とは別の承認者が承認してください（二人による確認）。",
            code="self_approval",
        )
    if view.author == me:
        note(request, four_eyes="relaxed", recipients=view.recipient_count)
    await _call(_service().approve, store_of(request), delivery_id, me)
    return await _respond(request, delivery_id)


async def reject(request: web.Request) -> web.Response:
    delivery_id = _path_id(request)
    body = await json_body(request, schema.RejectRequest)
    await _call(
        _service().reject, store_of(request), delivery_id, staff_of(request).username, body.comment
    )
    return await _respond(request, delivery_id)


async def cancel(request: web.Request) -> web.Response:
    from kairand.api.views import Empty

    delivery_id = _path_id(request)
    await json_body(request, Empty)
    await _call(_service().cancel, store_of(request), delivery_id, staff_of(request).username)
    return await _respond(request, delivery_id)

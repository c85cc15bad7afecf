"""Delivery routes: roles are checked by the middleware; four eyes (kairand.delivery.policy,
applied by service.four_eyes), the status machine and G3 by kairand.delivery.service, whose
DeliveryError becomes a 4xx problem (kairand.api.wire.problem_of)."""

from __future__ import annotations

import functools
from typing import TypeVar

from aiohttp import web

from kairand.api import schema
from kairand.api.http import (
    Empty,
    config_of,
    dotted,
    json_body,
    line_of,
    note,
    query,
    staff_of,
    store_of,
    wake_sender,
)
from kairand.api.problems import ApiProblem
from kairand.api.wire import detail_of, service_call, summary_of
from kairand.delivery import service
from kairand.line.errors import LINE_ERRORS
from kairand.logs import get_logger
from kairand.segments.model import SegmentError

T = TypeVar("T")
log = get_logger(__name__)


def _path_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdigit() or len(raw) > 18:
        raise ApiProblem("not-found", "指定された配信はありません。", field="id")
    return int(raw)


async def _respond(request: web.Request, delivery_id: int, status: int = 200) -> web.Response:
    view = await service_call(service.get(store_of(request), delivery_id))
    threshold = config_of(request).delivery.self_approval_threshold
    return web.json_response(text=detail_of(view, threshold).model_dump_json(), status=status)


async def list_(request: web.Request) -> web.Response:
    q = query(request, schema.DeliveryQuery)
    if q.status is not None and q.status not in {s.value for s in schema.Status}:
        raise ApiProblem("validation", "配信の状態の指定が正しくありません。", field="status")
    views = await service_call(
        service.list_deliveries(store_of(request), q.status, q.limit + 1, q.offset)
    )
    more = len(views) > q.limit
    page = schema.DeliveryPage(
        items=[summary_of(v) for v in views[: q.limit]],
        limit=q.limit,
        offset=q.offset,
        next_offset=q.offset + q.limit if more else None,
    )
    return web.json_response(text=page.model_dump_json())


async def create(request: web.Request) -> web.Response:
    content = await json_body(request, schema.DeliveryContent)
    note(request, title=content.title)  # class-1 public text; never recipients or answers
    new_id = await service_call(
        service.create_draft(
            store_of(request),
            staff_of(request).username,
            content,
            link_domains=config_of(request).links.allowed_domains,
        )
    )
    note(request, id=new_id)
    return web.json_response(text=schema.Created(id=new_id).model_dump_json(), status=201)


async def detail(request: web.Request) -> web.Response:
    return await _respond(request, _path_id(request))


async def update(request: web.Request) -> web.Response:
    delivery_id = _path_id(request)
    content = await json_body(request, schema.DeliveryContent)
    note(request, title=content.title)
    await service_call(
        service.update_draft(
            store_of(request),
            delivery_id,
            content,
            staff_of(request).username,
            link_domains=config_of(request).links.allowed_domains,
        )
    )
    return await _respond(request, delivery_id)


async def test_send(request: web.Request) -> web.Response:
    delivery_id = _path_id(request)
    await json_body(request, Empty)
    await service_call(service.get(store_of(request), delivery_id))  # 404 before "no LINE"
    line = line_of(request)
    if line is None:
        raise ApiProblem("line-unavailable", "LINE との接続が設定されていません。")
    sent = await service_call(
        service.test_send(
            store_of(request),
            line,
            delivery_id,
            staff_of(request).username,
            media=config_of(request).media,
        )
    )
    note(request, sent=sent)
    return web.json_response(text=schema.TestSendResult(sent=sent).model_dump_json())


async def submit(request: web.Request) -> web.Response:
    delivery_id = _path_id(request)
    await json_body(request, Empty)
    await service_call(
        service.submit(
            store_of(request),
            delivery_id,
            staff_of(request).username,
            link_domains=config_of(request).links.allowed_domains,
        )
    )
    return await _respond(request, delivery_id)


async def approve(request: web.Request) -> web.Response:
    delivery_id = _path_id(request)
    body = await json_body(request, schema.ApproveRequest)
    me = staff_of(request).username
    store, line = store_of(request), line_of(request)
    view = await service_call(service.get(store, delivery_id))
    threshold = config_of(request).delivery.self_approval_threshold
    try:
        four_eyes = await service.four_eyes(store, view, me, threshold)
    except SegmentError as exc:  # the audience cannot be counted against today's survey
        raise ApiProblem(
            "validation", exc.message_ja, field=dotted("segment." + exc.field)
        ) from None
    if four_eyes.audit_note == "refused":
        note(request, four_eyes="refused")
        raise ApiProblem(
            "four-eyes",
            "配信を作成・編集した方とは別の承認者が承認してください（二人による確認）。",
            code="self_approval",
        )
    if four_eyes.audit_note == "relaxed":
        note(request, four_eyes="relaxed", recipients=four_eyes.recipients)
    # Links and images are checked again at approval.
    approve_now = functools.partial(
        service.approve,
        store,
        delivery_id,
        me,
        link_domains=config_of(request).links.allowed_domains,
        media_public=bool(config_of(request).media.public_base_url),
        confirm_over_quota=body.confirm_over_quota,
    )
    try:
        await service_call(approve_now(line=line))
    except LINE_ERRORS as exc:
        # LINE's quota could not be read: approve anyway; the sender reads the quota again
        # before the first batch and pauses as quota_exhausted if it does not suffice.
        log.warning("api.approve_without_quota", error=type(exc).__name__)
        note(request, quota_check="unavailable")
        await service_call(approve_now())
    wake_sender(request)
    return await _respond(request, delivery_id)


async def reject(request: web.Request) -> web.Response:
    delivery_id = _path_id(request)
    body = await json_body(request, schema.RejectRequest)
    await service_call(
        service.reject(store_of(request), delivery_id, staff_of(request).username, body.comment)
    )
    return await _respond(request, delivery_id)


async def resume(request: web.Request) -> web.Response:
    delivery_id = _path_id(request)
    body = await json_body(request, schema.ApproveRequest)
    await service_call(
        service.resume(
            store_of(request),
            delivery_id,
            staff_of(request).username,
            confirm_over_quota=body.confirm_over_quota,
        )
    )
    wake_sender(request)
    return await _respond(request, delivery_id)


async def cancel(request: web.Request) -> web.Response:
    delivery_id = _path_id(request)
    await json_body(request, Empty)
    await service_call(service.cancel(store_of(request), delivery_id, staff_of(request).username))
    return await _respond(request, delivery_id)

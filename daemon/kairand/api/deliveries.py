"""Delivery routes: roles are checked by the middleware, four eyes here, the status machine and
G3 by kairand.delivery.service (whose DeliveryError becomes a 4xx problem)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

import aiohttp
from aiohttp import web
from linebot.v3.messaging.exceptions import ApiException
from pydantic import BaseModel, ConfigDict

from kairand.api import schema
from kairand.api.app import config_of, json_body, line_of, note, query, staff_of, store_of
from kairand.api.problems import ApiProblem
from kairand.delivery import service
from kairand.delivery.errors import DeliveryError, InvalidContent
from kairand.delivery.service import DeliveryView
from kairand.logs import get_logger
from kairand.segments import service as segments_service
from kairand.segments.model import SegmentError
from kairand.store import audit as audit_store
from kairand.store import survey as survey_store

T = TypeVar("T")
log = get_logger(__name__)
# What a Messaging API call raises when LINE cannot be reached or answers with an error.
LINE_ERRORS = (ApiException, aiohttp.ClientError, TimeoutError)
# Audit actions (written by kairand.delivery.service) that make someone a delivery's writer.
WRITING_ACTIONS = ("delivery.create", "delivery.update")


class Empty(BaseModel):
    """Action routes without options take no body, or `{}`: anything else is refused."""

    model_config = ConfigDict(extra="forbid")


def dotted(path: str) -> str:
    return path.replace("[", ".").replace("]", "")


def _path_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdigit() or len(raw) > 18:
        raise ApiProblem("not-found", "指定された配信はありません。", field="id")
    return int(raw)


def can_self_approve(recipient_count: int | None, threshold: int) -> bool:
    """Four eyes (S7): an author may approve their own delivery only when it reaches fewer
    recipients than the configured threshold (0 = never)."""
    return threshold > 0 and recipient_count is not None and recipient_count < threshold


def summary(view: DeliveryView) -> dict[str, object]:
    return {
        "id": view.id,
        "title": view.title,
        "status": view.status.value,
        "urgent": view.urgent,
        "author": view.author,
        "approver": view.approver,
        "scheduled_at": view.scheduled_at,
        "created_at": view.created_at,
        "recipient_count": view.recipient_count,
        "sent_count": view.sent_count,
        "failed_count": view.failed_count,
    }


def detail_of(view: DeliveryView, threshold: int) -> schema.DeliveryDetail:
    settled = (
        view.batches_sent + view.batches_failed + view.batches_needs_attention
    ) + view.batches_cancelled
    return schema.DeliveryDetail(
        **summary(view),  # type: ignore[arg-type]
        content=view.content,
        status_reason=view.status_reason,
        reject_comment=view.reject_comment,
        submitted_at=view.submitted_at,
        approved_at=view.approved_at,
        started_at=view.started_at,
        finished_at=view.finished_at,
        batches_total=view.batch_total,
        batches_done=settled,
        progress=view.progress,
        quota_confirmed=view.quota_confirmed,
        can_self_approve=can_self_approve(view.recipient_count, threshold),
    )


def event_of(view: DeliveryView) -> schema.DeliveryEvent:
    return schema.DeliveryEvent(
        id=view.id,
        status=view.status.value,
        recipient_count=view.recipient_count,
        sent_count=view.sent_count,
        failed_count=view.failed_count,
        progress=view.progress,
    )


async def _call(awaitable: Awaitable[T]) -> T:
    """Await a delivery service call; its refusals become problems naming what went wrong."""
    try:
        return await awaitable
    except DeliveryError as exc:
        raise problem_of(exc) from None


def problem_of(exc: DeliveryError) -> ApiProblem:
    code, message = exc.code, exc.message_ja
    if code == "not_found":
        return ApiProblem("not-found", message, code=code, field="id")
    if code == "no_recipients":
        return ApiProblem("validation", message, field="segment", code=code)
    if code == "confidentiality_refused":
        return ApiProblem("validation", message, field="confidentiality", code=code)
    if isinstance(exc, InvalidContent):
        return ApiProblem("validation", message, field=dotted(exc.field), code=code)
    if code == "test_send_failed":
        return ApiProblem("line-unavailable", message, code=code)
    return ApiProblem("conflict", message, code=code)


async def _respond(request: web.Request, delivery_id: int, status: int = 200) -> web.Response:
    view = await _call(service.get(store_of(request), delivery_id))
    threshold = config_of(request).delivery.self_approval_threshold
    return web.json_response(text=detail_of(view, threshold).model_dump_json(), status=status)


async def list_(request: web.Request) -> web.Response:
    q = query(request, schema.DeliveryQuery)
    if q.status is not None and q.status not in {s.value for s in schema.Status}:
        raise ApiProblem("validation", "配信の状態の指定が正しくありません。", field="status")
    views = await _call(service.list_deliveries(store_of(request), q.status, q.limit + 1, q.offset))
    more = len(views) > q.limit
    page = schema.DeliveryPage(
        items=[schema.DeliverySummary(**summary(v)) for v in views[: q.limit]],  # type: ignore[arg-type]
        limit=q.limit,
        offset=q.offset,
        next_offset=q.offset + q.limit if more else None,
    )
    return web.json_response(text=page.model_dump_json())


async def create(request: web.Request) -> web.Response:
    content = await json_body(request, schema.DeliveryContent)
    note(request, title=content.title)  # class-1 public text; never recipients or answers
    new_id = await _call(
        service.create_draft(store_of(request), staff_of(request).username, content)
    )
    note(request, id=new_id)
    return web.json_response(text=schema.Created(id=new_id).model_dump_json(), status=201)


async def detail(request: web.Request) -> web.Response:
    return await _respond(request, _path_id(request))


async def update(request: web.Request) -> web.Response:
    delivery_id = _path_id(request)
    content = await json_body(request, schema.DeliveryContent)
    note(request, title=content.title)
    await _call(
        service.update_draft(store_of(request), delivery_id, content, staff_of(request).username)
    )
    return await _respond(request, delivery_id)


async def test_send(request: web.Request) -> web.Response:
    delivery_id = _path_id(request)
    await json_body(request, Empty)
    await _call(service.get(store_of(request), delivery_id))  # 404 before "no LINE"
    line = line_of(request)
    if line is None:
        raise ApiProblem("line-unavailable", "LINE との接続が設定されていません。")
    sent = await _call(
        service.test_send(store_of(request), line, delivery_id, staff_of(request).username)
    )
    note(request, sent=sent)
    return web.json_response(text=schema.TestSendResult(sent=sent).model_dump_json())


async def submit(request: web.Request) -> web.Response:
    delivery_id = _path_id(request)
    await json_body(request, Empty)
    await _call(service.submit(store_of(request), delivery_id, staff_of(request).username))
    return await _respond(request, delivery_id)


async def _audience(request: web.Request, view: DeliveryView) -> int | None:
    """Recipients the delivery would reach if approved now (for the four-eyes threshold)."""
    if view.recipient_count is not None:
        return view.recipient_count
    current = await store_of(request).read(survey_store.current)
    if current is None:  # pragma: no cover - open_store seeds the default survey
        return None
    try:
        return await segments_service.audience_count(store_of(request), view.segment, current[1])
    except SegmentError as exc:
        raise ApiProblem(
            "validation", exc.message_ja, field=dotted("segment." + exc.field)
        ) from None


async def approve(request: web.Request) -> web.Response:
    delivery_id = _path_id(request)
    body = await json_body(request, schema.ApproveRequest)
    me = staff_of(request).username
    view = await _call(service.get(store_of(request), delivery_id))
    # The author, and anyone who edited the content, counts as its writer (S7: four eyes).
    writers = {view.author} | await store_of(request).read(
        audit_store.actors_for, f"delivery {delivery_id}", WRITING_ACTIONS
    )
    if me in writers:
        threshold = config_of(request).delivery.self_approval_threshold
        recipients = await _audience(request, view) if threshold > 0 else None
        if not can_self_approve(recipients, threshold):
            note(request, four_eyes="refused")
            raise ApiProblem(
                "four-eyes",
                "配信を作成・編集した方とは別の承認者が承認してください（二人による確認）。",
                code="self_approval",
            )
        note(request, four_eyes="relaxed", recipients=recipients)
    store, line = store_of(request), line_of(request)
    try:
        await _call(
            service.approve(
                store, delivery_id, me, line=line, confirm_over_quota=body.confirm_over_quota
            )
        )
    except LINE_ERRORS as exc:
        # LINE's quota could not be read: approve anyway; the sender reads the quota again
        # before the first batch and pauses as quota_exhausted if it does not suffice.
        log.warning("api.approve_without_quota", error=type(exc).__name__)
        note(request, quota_check="unavailable")
        await _call(
            service.approve(store, delivery_id, me, confirm_over_quota=body.confirm_over_quota)
        )
    return await _respond(request, delivery_id)


async def reject(request: web.Request) -> web.Response:
    delivery_id = _path_id(request)
    body = await json_body(request, schema.RejectRequest)
    await _call(
        service.reject(store_of(request), delivery_id, staff_of(request).username, body.comment)
    )
    return await _respond(request, delivery_id)


async def resume(request: web.Request) -> web.Response:
    delivery_id = _path_id(request)
    body = await json_body(request, schema.ApproveRequest)
    await _call(
        service.resume(
            store_of(request),
            delivery_id,
            staff_of(request).username,
            confirm_over_quota=body.confirm_over_quota,
        )
    )
    return await _respond(request, delivery_id)


async def cancel(request: web.Request) -> web.Response:
    delivery_id = _path_id(request)
    await json_body(request, Empty)
    await _call(service.cancel(store_of(request), delivery_id, staff_of(request).username))
    return await _respond(request, delivery_id)

"""A delivery on the wire: the one place that maps kairand.delivery.service.DeliveryView to the
API schema (list rows, the detail page, server-sent progress events), a delivery service's
refusal (DeliveryError) to its problem, and the dashboard's counters. Route modules share
these through here: a route module imports no other route module."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable
from typing import TypeVar

from kairand.api import schema
from kairand.api.http import dotted, japan_today
from kairand.api.problems import ApiProblem
from kairand.api.statistics import mail_total
from kairand.delivery.errors import DeliveryError, InvalidContent, OutOfScope
from kairand.delivery.messages import urls_of
from kairand.delivery.policy import can_self_approve
from kairand.delivery.service import DeliveryView
from kairand.store import mail as mail_store
from kairand.store import stats as stats_store
from kairand.store.database import Store
from kairand.timeutil import JST

T = TypeVar("T")


def _mail(view: DeliveryView) -> schema.MailTally | None:
    m = view.mail
    if m.recipients == 0:
        return None
    return schema.MailTally(
        recipients=m.recipients, sent=m.sent, failed=m.failed, unconfirmed=m.unconfirmed
    )


def _totals(view: DeliveryView) -> dict[str, object]:
    """Counts on every channel: LINE residents plus mail subscribers."""
    m = view.mail
    return {
        "recipient_count": (
            None if view.recipient_count is None else view.recipient_count + m.recipients
        ),
        "sent_count": view.sent_count + m.sent,
        "failed_count": view.failed_count + m.failed,
        "mail": _mail(view),
    }


def _common(view: DeliveryView) -> dict[str, object]:
    return {
        "id": view.id,
        "title": view.title,
        "status": view.status.value,
        "urgent": view.urgent,
        "author": view.author,
        "approver": view.approver,
        "scheduled_at": view.scheduled_at,
        "created_at": view.created_at,
        **_totals(view),
        "sent_back": view.status.value == "draft" and bool(view.reject_comment),
    }


def summary_of(view: DeliveryView) -> schema.DeliverySummary:
    return schema.DeliverySummary(**_common(view))  # type: ignore[arg-type]


def detail_of(view: DeliveryView, threshold: int) -> schema.DeliveryDetail:
    """THRESHOLD: config.delivery.self_approval_threshold (whether a writer may approve)."""
    settled = (
        view.batches_sent + view.batches_failed + view.batches_needs_attention
    ) + view.batches_cancelled
    return schema.DeliveryDetail(
        **_common(view),  # type: ignore[arg-type]
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
        can_self_approve=can_self_approve(
            None if view.recipient_count is None else view.recipient_count + view.mail.recipients,
            threshold,
        ),
        links=[url for _, url in urls_of(view.messages)],
    )


def event_of(view: DeliveryView) -> schema.DeliveryEvent:
    return schema.DeliveryEvent(
        id=view.id,
        status=view.status.value,
        **_totals(view),  # type: ignore[arg-type]
        progress=view.progress,
    )


async def service_call(awaitable: Awaitable[T]) -> T:
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
    if isinstance(exc, OutOfScope):  # K8: outside the author's institutions' districts
        return ApiProblem("forbidden", message, field=dotted(exc.field), code=exc.reason)
    if code == "test_send_failed":
        return ApiProblem("line-unavailable", message, code=code)
    return ApiProblem("conflict", message, code=code)


async def dashboard_counters(store: Store, k: int, mail: bool) -> schema.DashboardCounters:
    """Today's figures on the dashboard (and in its server-sent events); mail subscribers
    apart, shown as "<K" below K (None when the mail channel is off and has nobody)."""
    today = japan_today()
    start = int(dt.datetime.combine(today, dt.time(), JST).timestamp())
    c = await store.read(stats_store.counters, start, today.isoformat())
    by_mail = (await store.read(mail_store.stage_counts)).get("registered", 0)
    return schema.DashboardCounters(
        registered_mail=mail_total(by_mail, k, mail),
        friends=c.friends,
        registered=c.registered,
        deliveries_today=c.deliveries_today,
        messages_sent_today=c.messages_sent_today,
        active_deliveries=c.active_deliveries,
        pending_approval=c.pending_approval,
    )

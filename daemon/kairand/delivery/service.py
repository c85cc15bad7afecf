"""Delivery operations for the staff API (kairand.api.routes.deliveries calls these).

They enforce the status machine (kairand.delivery.model) and G3 (only confidentiality class 1
goes through LINE). They do NOT check roles: the API does. Four eyes is decided by
four_eyes() below (rules in kairand.delivery.policy), which the approval route asks before
calling approve().
Every state change writes an audit entry in the same transaction as the change.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
from linebot.v3.messaging import ApiException, Message, PushMessageRequest, TextMessage

from kairand.audit.chain import AuditEntry
from kairand.config import MediaSection
from kairand.conversation.survey import SurveyDefinition
from kairand.delivery import audience, policy
from kairand.delivery.errors import (
    ConfidentialityRefused,
    DeliveryError,
    DeliveryNotFound,
    InvalidContent,
    InvalidTransition,
    NoRecipients,
    NoTestRecipients,
    OutOfScope,
    QuotaExceeded,
)
from kairand.delivery.messages import (
    MessageItem,
    dump_item,
    media_of,
    parse_item,
    to_line_all,
    url_problems,
)
from kairand.delivery.model import (
    MAX_MESSAGES,
    TEST_NOTICE,
    DeliveryContent,
    Status,
    can_move,
)
from kairand.delivery.quota import read_quota
from kairand.line.client import LineApi
from kairand.line.media import MediaNotReady, urls_for
from kairand.logs import get_logger
from kairand.programs import service as programs
from kairand.programs.model import DEFAULT_PROGRAM
from kairand.programs.scope import ScopeError
from kairand.segments.model import (
    Condition,
    SegmentError,
    SegmentFilter,
    send_date,
    validate_against,
)
from kairand.store import audit as audit_store
from kairand.store import deliveries as q
from kairand.store import mail as mail_store
from kairand.store import media as media_store
from kairand.store import segments as segment_queries
from kairand.store import settings, test_recipients
from kairand.store import survey as survey_store
from kairand.store.database import Connection, Store

log = get_logger(__name__)
T = TypeVar("T")
NO_MAIL = mail_store.DeliveryMail()


@dataclass(frozen=True)
class DeliveryView:
    id: int
    title: str
    confidentiality: int
    messages: list[MessageItem]
    segment: SegmentFilter
    notification_disabled: bool
    scheduled_at: dt.datetime | None
    urgent: bool
    status: Status
    status_reason: str | None
    author: str
    approver: str | None
    reject_comment: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    submitted_at: dt.datetime | None
    approved_at: dt.datetime | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    recipient_count: int | None
    sent_count: int
    failed_count: int
    batch_total: int
    batches_sent: int
    batches_failed: int
    batches_pending: int
    batches_in_flight: int
    batches_needs_attention: int
    batches_cancelled: int
    progress: float
    """Share of batches settled (sent, failed, flagged or cancelled), 0.0–1.0."""
    quota_confirmed: bool
    mail: mail_store.DeliveryMail = NO_MAIL
    """The mail channel's recipients and sends; the counts above cover LINE."""

    @property
    def content(self) -> DeliveryContent:
        return DeliveryContent(
            title=self.title,
            confidentiality=self.confidentiality,  # type: ignore[arg-type]
            messages=tuple(self.messages),
            segment=self.segment,
            notification_disabled=self.notification_disabled,
            scheduled_at=self.scheduled_at,
            urgent=self.urgent,
        )


def _ts(value: int | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(value, dt.UTC) if value is not None else None


def _view(
    row: q.DeliveryRow, totals: q.BatchTotals, mail: mail_store.DeliveryMail | None = None
) -> DeliveryView:
    settled = totals.sent + totals.failed + totals.needs_attention + totals.cancelled
    return DeliveryView(
        id=row.id,
        title=row.title,
        confidentiality=row.confidentiality,
        messages=[parse_item(m) for m in row.messages],
        segment=SegmentFilter.model_validate(row.segment),
        notification_disabled=row.notification_disabled,
        scheduled_at=_ts(row.scheduled_at),
        urgent=row.urgent,
        status=Status(row.status),
        status_reason=row.status_reason,
        author=row.author,
        approver=row.approver,
        reject_comment=row.reject_comment,
        created_at=_ts(row.created_at) or dt.datetime.now(dt.UTC),
        updated_at=_ts(row.updated_at) or dt.datetime.now(dt.UTC),
        submitted_at=_ts(row.submitted_at),
        approved_at=_ts(row.approved_at),
        started_at=_ts(row.started_at),
        finished_at=_ts(row.finished_at),
        recipient_count=row.recipient_count,
        sent_count=row.sent_count,
        failed_count=row.failed_count,
        batch_total=totals.total,
        batches_sent=totals.sent,
        batches_failed=totals.failed,
        batches_pending=totals.pending,
        batches_in_flight=totals.in_flight,
        batches_needs_attention=totals.needs_attention,
        batches_cancelled=totals.cancelled,
        progress=(settled / totals.total) if totals.total else 0.0,
        quota_confirmed=row.quota_confirmed,
        mail=mail or NO_MAIL,
    )


def audit(
    conn: Connection, actor: str, action: str, delivery_id: int, outcome: str = "ok", **detail: Any
) -> None:
    audit_store.append(
        conn,
        AuditEntry(
            int(time.time() * 1000), actor, action, outcome, f"delivery {delivery_id}", detail
        ),
    )


def _check_class(confidentiality: int) -> None:
    if confidentiality != 1:
        raise ConfidentialityRefused(confidentiality)


def _check_segment(conn: Connection, segment: SegmentFilter, author: str | None = None) -> None:
    if segment.program != DEFAULT_PROGRAM or author is not None:
        # Programs: the program's own questions, and the author's institutions (K8).
        try:
            programs.check_segment(conn, author or "", segment)
        except programs.ProgramError as exc:
            raise InvalidContent(exc.field or "segment", exc.message_ja) from None
        except SegmentError as exc:
            raise InvalidContent(f"segment.{exc.field}", exc.message_ja) from None
        except ScopeError as exc:
            raise OutOfScope(exc.code, exc.field, exc.message_ja) from None
        if segment.program != DEFAULT_PROGRAM:
            return
    current = survey_store.current(conn)
    if current is None:
        return
    try:
        validate_against(segment, current[1])
    except SegmentError as exc:
        raise InvalidContent(f"segment.{exc.field}", exc.message_ja) from None


def _condition_words(condition: Condition, survey: SurveyDefinition) -> str:
    data = condition.model_dump()
    question = survey.question(data.get("question", ""))
    title = question.title if question is not None else str(data.get("question"))
    if "any_of" in data:
        labels = []
        for code in data["any_of"]:
            option = question.option(code) if question is not None else None
            labels.append(option.label if option is not None else code)
        return f"{title}：{'・'.join(labels)}"
    low, high = data.get("age_from"), data.get("age_to")
    if low is not None and high is not None:
        return f"年齢：{low}〜{high}歳"
    return f"年齢：{low}歳以上" if low is not None else f"年齢：{high}歳以下"


def _check_audience(conn: Connection, segment: SegmentFilter, scheduled_at: int | None) -> None:
    """Refuse a delivery whose segment selects nobody now, naming the condition that leaves no
    one: the conditions are applied one after another and the first that brings the count to
    0 is named (「該当する登録者がいません。「地域：本町」の条件で対象が0人になります…」)."""
    current = survey_store.current(conn)
    if current is None:  # pragma: no cover - open_store seeds the default survey
        return
    survey = current[1]
    on = send_date(_ts(scheduled_at))
    if segment_queries.count_segment(conn, segment, on, survey) > 0:
        return
    if mail_store.count_matching(conn, segment, on, survey) > 0:
        return  # reached by mail only
    if segment.all_registered or not segment.conditions:
        raise NoRecipients("登録を済ませた方がまだいません。")
    for n in range(1, len(segment.conditions) + 1):
        partial = SegmentFilter(conditions=segment.conditions[:n])
        if segment_queries.count_segment(conn, partial, on, survey) == 0:
            words = _condition_words(segment.conditions[n - 1], survey)
            if n == 1:
                reason = f"「{words}」に当てはまる登録者がいません。"
            else:
                reason = (
                    f"「{words}」の条件を加えると、対象が0人になります"
                    "（ほかの条件との組み合わせに当てはまる方がいません）。"
                )
            raise NoRecipients(reason + "条件を見直してください。")
    raise NoRecipients("条件を見直してください。")  # pragma: no cover - counts agree


LINK_DOMAINS_KEY = "links.allowed_domains"
"""Settings key of the domains an admin added at runtime (config links.allowed_domains also
applies)."""


def allowed_domains(conn: Connection, configured: Iterable[str] = ()) -> list[str]:
    added = settings.get(conn, LINK_DOMAINS_KEY, []) or []
    return sorted({*configured, *added})


def _check_links_and_media(
    conn: Connection, messages: Iterable[MessageItem], configured: Iterable[str]
) -> None:
    """Every link goes to an allowed domain; every image exists."""
    items = list(messages)
    problems = url_problems(items, allowed_domains(conn, configured))
    if problems:
        where, message = problems[0]
        raise InvalidContent(where, message)
    missing = media_store.missing(conn, media_of(items))
    if missing:
        raise InvalidContent("messages", "画像が見つかりません。もう一度画像を選び直してください。")


def check_content(conn: Connection, content: DeliveryContent, domains: Iterable[str]) -> None:
    """Everything a delivery's content must satisfy before it is stored or approved: G3, the
    segment against the current survey, links and images (also used for series)."""
    _check_class(content.confidentiality)
    _check_segment(conn, content.segment)
    _check_links_and_media(conn, content.messages, domains)


def _content_fields(content: DeliveryContent) -> dict[str, Any]:
    return {
        "title": content.title,
        "confidentiality": content.confidentiality,
        "messages": [dump_item(m) for m in content.messages],
        "segment_json": content.segment.model_dump_json(),
        "notification_disabled": content.notification_disabled,
        "urgent": content.urgent,
        "scheduled_at": int(content.scheduled_at.timestamp()) if content.scheduled_at else None,
    }


def _load(conn: Connection, delivery_id: int) -> q.DeliveryRow:
    row = q.get(conn, delivery_id)
    if row is None:
        raise DeliveryNotFound(delivery_id)
    return row


def _move(
    conn: Connection, row: q.DeliveryRow, target: Status, action: str, now: int, **fields: Any
) -> None:
    if not can_move(row.status, target) or not q.set_status(
        conn, row.id, [row.status], target.value, now, **fields
    ):
        raise InvalidTransition(row.id, row.status, action)


# -- the operations -----------------------------------------------------------------------------


async def create_draft(
    store: Store, author: str, content: DeliveryContent, *, link_domains: Iterable[str] = ()
) -> int:
    _check_class(content.confidentiality)

    def tx(conn: Connection) -> int:
        _check_segment(conn, content.segment, author)
        _check_links_and_media(conn, content.messages, link_domains)
        delivery_id = q.insert(
            conn, author=author, now=int(time.time()), **_content_fields(content)
        )
        media_store.link_delivery(conn, delivery_id, media_of(content.messages))
        audit(conn, author, "delivery.create", delivery_id)
        return delivery_id

    return await store.write(tx)


async def update_draft(
    store: Store,
    delivery_id: int,
    content: DeliveryContent,
    actor: str,
    *,
    link_domains: Iterable[str] = (),
) -> None:
    _check_class(content.confidentiality)

    def tx(conn: Connection) -> None:
        row = _load(conn, delivery_id)
        if row.status != Status.draft.value:
            raise InvalidTransition(delivery_id, row.status, "update")
        _check_segment(conn, content.segment, row.author)
        _check_links_and_media(conn, content.messages, link_domains)
        if not q.update_content(
            conn, delivery_id, now=int(time.time()), **_content_fields(content)
        ):
            raise InvalidTransition(delivery_id, row.status, "update")
        media_store.link_delivery(conn, delivery_id, media_of(content.messages))
        audit(conn, actor, "delivery.update", delivery_id)

    await store.write(tx)


async def submit(
    store: Store, delivery_id: int, actor: str, *, link_domains: Iterable[str] = ()
) -> None:
    def tx(conn: Connection) -> None:
        row = _load(conn, delivery_id)
        _check_class(row.confidentiality)
        _check_segment(conn, SegmentFilter.model_validate(row.segment), row.author)
        _check_links_and_media(conn, [parse_item(m) for m in row.messages], link_domains)
        _check_audience(conn, SegmentFilter.model_validate(row.segment), row.scheduled_at)
        now = int(time.time())
        _move(
            conn, row, Status.pending_approval, "submit", now, submitted_at=now, reject_comment=None
        )
        audit(conn, actor, "delivery.submit", delivery_id)

    await store.write(tx)


async def approve(
    store: Store,
    delivery_id: int,
    approver: str,
    *,
    line: LineApi | None = None,
    confirm_over_quota: bool = False,
    link_domains: Iterable[str] = (),
    media_public: bool = True,
) -> Status:
    """Approve; returns the new status (approved: send now, scheduled: at scheduled_at).

    With LINE given, reads the monthly quota first and raises QuotaExceeded when the segment
    would exceed a limited quota, unless CONFIRM_OVER_QUOTA. The sender checks again before
    sending (a delivery approved without LINE at hand is still protected).
    """
    row = await store.read(_load, delivery_id)
    _check_class(row.confidentiality)
    if row.status != Status.pending_approval.value:
        raise InvalidTransition(delivery_id, row.status, "approve")
    if line is not None:
        quota = await read_quota(line)
        if quota.limited and not confirm_over_quota:
            needed = await _segment_count(store, row)
            if not quota.allows(needed):
                raise QuotaExceeded(needed, quota.remaining or 0)

    def tx(conn: Connection) -> Status:
        current = _load(conn, delivery_id)
        _check_segment(conn, SegmentFilter.model_validate(current.segment), current.author)
        # Links are checked again: an admin may have removed a domain since the submit.
        items = [parse_item(m) for m in current.messages]
        _check_links_and_media(conn, items, link_domains)
        if media_of(items) and not media_public:
            raise InvalidContent(
                "messages",
                "画像を送るための公開アドレス（media.public_base_url）が設定されていないため"
                "承認できません。管理者にお問い合わせください。",
            )
        _check_audience(conn, SegmentFilter.model_validate(current.segment), current.scheduled_at)
        now = int(time.time())
        target = (
            Status.scheduled
            if current.scheduled_at is not None and current.scheduled_at > now
            else Status.approved
        )
        _move(
            conn,
            current,
            target,
            "approve",
            now,
            approver=approver,
            approved_at=now,
            quota_confirmed=int(confirm_over_quota),
        )
        audit(
            conn,
            approver,
            "delivery.approve",
            delivery_id,
            status=target.value,
            quota_confirmed=confirm_over_quota,
        )
        return target

    return await store.write(tx)


async def four_eyes(
    store: Store, view: DeliveryView, approver: str, threshold: int
) -> policy.FourEyes:
    """Four eyes (S7) for APPROVER approving VIEW (kairand.delivery.policy has the rule): reads
    who wrote the delivery and, when it matters, counts its audience again now.

    Raises kairand.segments.model.SegmentError when the filter no longer fits the survey.
    """
    editors = await store.read(
        audit_store.actors_for, f"delivery {view.id}", policy.WRITING_ACTIONS
    )
    writer_names = policy.writers(view.author, editors)
    recipients = None
    if policy.needs_audience(approver, writer_names, threshold):
        recipients = await _audience(store, view)
    return policy.decide(approver, writer_names, threshold, recipients)


async def _audience(store: Store, view: DeliveryView) -> int | None:
    """Recipients the delivery reaches: frozen at sending, else counted now."""
    if view.recipient_count is not None:
        return view.recipient_count + view.mail.recipients
    current = await store.read(survey_store.current)
    if current is None:  # pragma: no cover - open_store seeds the default survey
        return None
    counts = await audience.channel_counts(store, view.segment, current[1])
    return counts.total


async def _segment_count(store: Store, row: q.DeliveryRow) -> int:
    segment = SegmentFilter.model_validate(row.segment)
    at = _ts(row.scheduled_at)
    current = await store.read(survey_store.current)
    survey = current[1] if current else None
    return await store.read(segment_queries.count_segment, segment, send_date(at), survey)


async def reject(store: Store, delivery_id: int, approver: str, comment: str) -> None:
    """Send back to the author as a draft with COMMENT (差し戻し)."""

    def tx(conn: Connection) -> None:
        row = _load(conn, delivery_id)
        if row.status != Status.pending_approval.value:
            raise InvalidTransition(delivery_id, row.status, "reject")
        _move(
            conn,
            row,
            Status.draft,
            "reject",
            int(time.time()),
            reject_comment=comment,
            approver=None,
        )
        audit(conn, approver, "delivery.reject", delivery_id)

    await store.write(tx)


async def cancel(store: Store, delivery_id: int, actor: str) -> None:
    """Cancel; a sending delivery stops before its next batch (batches already requested are
    still confirmed with their retry key). See docs/delivery.md."""

    def tx(conn: Connection) -> None:
        row = _load(conn, delivery_id)
        now = int(time.time())
        _move(conn, row, Status.cancelled, "cancel", now, finished_at=now)
        dropped = q.cancel_pending_batches(conn, delivery_id)
        audit(
            conn,
            actor,
            "delivery.cancel",
            delivery_id,
            batches_cancelled=dropped,
            previous_status=row.status,
        )

    await store.write(tx)


async def resume(
    store: Store, delivery_id: int, actor: str, *, confirm_over_quota: bool = False
) -> None:
    """Resume a delivery paused as quota_exhausted (after the quota was raised or reset)."""

    def tx(conn: Connection) -> None:
        row = _load(conn, delivery_id)
        _check_class(row.confidentiality)
        _move(
            conn,
            row,
            Status.sending,
            "resume",
            int(time.time()),
            status_reason=None,
            quota_confirmed=int(confirm_over_quota or row.quota_confirmed),
        )
        audit(conn, actor, "delivery.resume", delivery_id)

    await store.write(tx)


async def get(store: Store, delivery_id: int) -> DeliveryView:
    def tx(conn: Connection) -> DeliveryView:
        row = _load(conn, delivery_id)
        return _view(
            row, q.batch_totals(conn, delivery_id), mail_store.delivery_mail(conn, delivery_id)
        )

    return await store.read(tx)


async def list_deliveries(
    store: Store, status: Status | str | None = None, limit: int = 50, offset: int = 0
) -> list[DeliveryView]:
    wanted = Status(status).value if status is not None else None

    def tx(conn: Connection) -> list[DeliveryView]:
        rows = q.list_rows(conn, wanted, limit, offset)
        return [
            _view(row, q.batch_totals(conn, row.id), mail_store.delivery_mail(conn, row.id))
            for row in rows
        ]

    return await store.read(tx)


# -- test send ---------------------------------------------------------------------------------


def test_pushes(messages: list[T]) -> list[list[T | str]]:
    """The push requests of a test send: the 【テスト送信】 notice as a message of its own, then
    the messages unchanged (texts, images, stickers, cards), at most LINE's 5 message objects
    per request (five messages: two pushes, in order)."""
    sequence: list[T | str] = [TEST_NOTICE, *messages]
    return [sequence[i : i + MAX_MESSAGES] for i in range(0, len(sequence), MAX_MESSAGES)]


async def test_send(
    store: Store,
    line: LineApi,
    delivery_id: int,
    staff: str,
    clock: Callable[[], float] = time.time,
    *,
    media: MediaSection | None = None,
) -> int:
    """Push the delivery's messages, after a 【テスト送信】 notice, to STAFF's own test
    recipients only (push, never multicast; no approval needed). Returns how many received
    all of it."""
    row = await store.read(_load, delivery_id)
    _check_class(row.confidentiality)
    if row.status == Status.cancelled.value:
        raise InvalidTransition(delivery_id, row.status, "test_send")
    recipients = await store.read(test_recipients.recipients_of, staff)
    if not recipients:
        raise NoTestRecipients()
    items = [parse_item(m) for m in row.messages]
    section = media or MediaSection()
    media_ids = media_of(items)
    try:
        url = await urls_for(store, section, media_ids)
        wire = [Message.from_dict(d) for d in to_line_all(items, url)]
    except MediaNotReady:
        raise InvalidContent(
            "messages",
            "画像を送るための公開アドレス（media.public_base_url）が設定されていません。"
            "管理者にお問い合わせください。",
        ) from None
    if media_ids:
        until = int(clock()) + section.test_serve_seconds
        await store.write(media_store.grant, media_ids, until)
    pushes = test_pushes(wire)
    ok = 0
    last_error = None
    for to in recipients:
        try:
            for texts in pushes:
                request = PushMessageRequest(
                    to=to,
                    messages=[TextMessage(text=m) if isinstance(m, str) else m for m in texts],
                    notification_disabled=row.notification_disabled,
                )
                await line.messaging.push_message(
                    request, x_line_retry_key=str(uuid.uuid4()), _request_timeout=line.timeout
                )
            ok += 1
        except ApiException as exc:
            last_error = f"push HTTP {exc.status}"
        except (TimeoutError, aiohttp.ClientError) as exc:
            last_error = f"push {type(exc).__name__}"
    now = clock()

    def tx(conn: Connection) -> None:
        if ok:
            settings.put(conn, "line.last_ok_at", int(now))
        if last_error:
            settings.put(conn, "line.last_error", {"at": int(now), "error": last_error})
        audit(
            conn,
            staff,
            "delivery.test_send",
            delivery_id,
            outcome="ok" if ok == len(recipients) else "failed",
            recipients=len(recipients),
            delivered=ok,
        )

    await store.write(tx)
    if ok == 0:
        raise DeliveryError(
            "test_send_failed",
            "テスト送信に失敗しました。LINEとの接続状況を確認してから、もう一度お試しください。",
        )
    return ok

"""The queue in the LINE chat (W2): 番号札を取る → service → ticket; 順番を確認;
取消; and the kiosk QR code's pre-filled message that ties a paper ticket to the sender.

Runs inside the inbox worker's write transaction (like the booking dialogue), so a ticket and
the inbox row commit together: a daemon killed before the commit redoes the event, never half.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kairand.config import QueueSection
from kairand.conversation.events import Event
from kairand.queue import core, service
from kairand.queue.core import QueueRuleError
from kairand.store import metrics, residents
from kairand.store import queue as qstore
from kairand.store.database import Connection
from kairand.store.queue import Ticket

Message = dict[str, Any]
PREFIX = "que="
TAKE_WORDS = frozenset({"番号札を取る", "番号札", "整理券"})
STATUS_WORDS = frozenset({"順番を確認", "順番確認", "待ち状況"})
CANCEL_WORDS = frozenset({"番号札を取り消す", "番号札の取消", "番号札取消"})


def _item(label: str, data: str) -> Message:
    return {
        "type": "action",
        "action": {"type": "postback", "label": label[:20], "data": data, "displayText": label},
    }


def _text(text: str, items: Sequence[Message] = ()) -> Message:
    message: Message = {"type": "text", "text": text}
    if items:
        message["quickReply"] = {"items": list(items)[:13]}
    return message


def _menu() -> list[Message]:
    return [_item("順番を確認", PREFIX + "status"), _item("番号札を取り消す", PREFIX + "cancel")]


def wants(event: Event) -> bool:
    """Whether EVENT is about the queue (else the booking dialogue or the survey takes it)."""
    if event.kind == "postback":
        return event.data.startswith(PREFIX)
    if event.kind == "text":
        text = event.text.strip()
        return (
            text in TAKE_WORDS
            or text in STATUS_WORDS
            or text in CANCEL_WORDS
            or core.parse_token(text) is not None
        )
    return False


def _status_line(conn: Connection, cfg: QueueSection, ticket: Ticket) -> str:
    name = cfg.service(ticket.service)
    title = f"{ticket.label}（{name.name if name else ticket.service}）"
    if ticket.state == "waiting":
        ahead, minutes = service.position_of(conn, cfg, ticket)
        return f"{title}：{core.position_text(ahead or 0, minutes)}"
    if ticket.state == "called" and ticket.counter is not None:
        return f"{title}：お呼びしています。{ticket.counter}番窓口へお越しください。"
    if ticket.state == "serving":
        return f"{title}：窓口で対応中です。"
    return f"{title}：{core.STATE_LABELS.get(ticket.state, ticket.state)}"


def _issued_text(cfg: QueueSection, issued: service.Issued | service.Linked) -> str:
    ticket = issued.ticket
    svc = cfg.service(ticket.service)
    name = svc.name if svc else ticket.service
    ahead = issued.ahead or 0
    near = (
        f"順番が近づいたら（あと{cfg.notify_when_ahead}人になったら）と、お呼びしたときに、"
        "このトークでお知らせします。"
        if cfg.notify_when_ahead
        else "お呼びしたときに、このトークでお知らせします。"
    )
    return f"番号札 {ticket.label}（{name}）\n{core.position_text(ahead, issued.minutes)}\n{near}"


def _handle(
    conn: Connection, cfg: QueueSection, event: Event, resident_id: int, now: float
) -> list[Message]:
    text = event.text.strip() if event.kind == "text" else ""
    action, _, arg = (
        event.data[len(PREFIX) :].partition("&s=") if event.kind == "postback" else ("", "", "")
    )
    token = core.parse_token(text) if text else None
    if token is not None:
        linked = service.link_token(conn, cfg, token, resident_id, now)
        metrics.increment(conn, "queue.linked", int(now))
        return [_text("紙の番号札をLINEと連携しました。\n" + _issued_text(cfg, linked), _menu())]
    if text in TAKE_WORDS or action == "menu":
        if not cfg.services:
            return [_text("現在、番号札の受付はありません。")]
        if not core.is_open(now, cfg.opens_at, cfg.closes_at):
            return [_text(f"番号札の受付時間は{cfg.opens_at}〜{cfg.closes_at}です。")]
        items = [_item(s.name, f"{PREFIX}take&s={s.code}") for s in cfg.services]
        return [_text("どちらの窓口の番号札をお取りしますか。", items)]
    if action == "take":
        issued = service.issue(conn, cfg, arg, "line", now, resident_id)
        metrics.increment(conn, "queue.issued_line", int(now))
        return [_text("番号札をお取りしました。\n" + _issued_text(cfg, issued), _menu())]
    mine = [
        t
        for t in qstore.of_resident(conn, resident_id, core.day_of(now).isoformat())
        if t.state in core.OPEN_STATES
    ]
    if text in STATUS_WORDS or action == "status":
        if not mine:
            return [
                _text("本日お取りの番号札はありません。", [_item("番号札を取る", PREFIX + "menu")])
            ]
        return [_text("\n".join(_status_line(conn, cfg, t) for t in mine), _menu())]
    if text in CANCEL_WORDS or action == "cancel":
        waiting = [t for t in mine if t.state in ("waiting", "called")]
        if not waiting:
            return [_text("取り消せる番号札はありません。")]
        labels = "、".join(t.label for t in waiting)
        return [
            _text(
                f"番号札 {labels} を取り消しますか。取り消すと順番は戻せません。",
                [_item("取り消す", PREFIX + "cancelok"), _item("取り消さない", PREFIX + "status")],
            )
        ]
    if action == "cancelok":
        cancelled = service.resident_cancel(conn, cfg, resident_id, now)
        if not cancelled:
            return [_text("取り消せる番号札はありません。")]
        labels = "、".join(t.label for t in cancelled)
        return [_text(f"番号札 {labels} を取り消しました。ご利用ありがとうございました。")]
    return [_text("この操作は受け付けられませんでした。もう一度お試しください。")]


def route(
    conn: Connection, cfg: QueueSection | None, event: Event, now: float
) -> list[Message] | None:
    """Handle EVENT if it belongs to the queue: the replies (maybe none); None otherwise."""
    if cfg is None or event.user_id is None or not wants(event):
        return None
    resident_id = qstore.resident_id_of(conn, event.user_id)
    if resident_id is None:
        resident_id = residents.start(conn, event.user_id, int(now))
    try:
        replies = _handle(conn, cfg, event, resident_id, now)
    except QueueRuleError as exc:
        replies = [_text(exc.message, _menu() if exc.code == "already" else ())]
    residents.touch(conn, resident_id, int(now))
    return replies[:5]

"""Delivery content and the status machine (pure).

Status machine (the worker drives the right-hand part):

    draft ──submit──> pending_approval ──approve──> approved (send now) ─┐
      ^                   │                    └──> scheduled (later) ──┴─> sending
      └──────reject───────┘                                                  │
    sending ──> sent | partially_failed | failed | needs_attention | quota_exhausted
    quota_exhausted ──resume──> sending
    draft/pending_approval/approved/scheduled/sending/quota_exhausted ──cancel──> cancelled
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from kairand.delivery.messages import (
    MESSAGE_WHITESPACE,
    MessageItem,
    RichItem,
    check_text,
    refuse_controls,
)
from kairand.segments.model import SegmentFilter

MAX_MESSAGES = 5
MAX_TEXT_UNITS = 5000


def _message_text(text: str) -> str:
    _refuse_controls(text, MESSAGE_WHITESPACE)
    return text


MessageText = Annotated[str, AfterValidator(_message_text)]
"""One message: checked per item, so an error names `messages.N`."""


def _refuse_controls(text: str, allowed: frozenset[str]) -> None:
    refuse_controls(text, allowed)


TEST_NOTICE = (
    "【テスト送信】\nこの後のメッセージは配信前の確認用です。住民の皆さまには届いていません。"
)
"""The message a test send starts with: its own message object, so every text goes out
unchanged (a prefix glued to a valid 5,000-unit text pushed it over LINE's limit)."""


class Status(enum.StrEnum):
    draft = "draft"
    pending_approval = "pending_approval"
    approved = "approved"
    scheduled = "scheduled"
    sending = "sending"
    sent = "sent"
    partially_failed = "partially_failed"
    failed = "failed"
    cancelled = "cancelled"
    quota_exhausted = "quota_exhausted"
    needs_attention = "needs_attention"


TERMINAL = frozenset(
    {Status.sent, Status.partially_failed, Status.failed, Status.cancelled, Status.needs_attention}
)

TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.draft: frozenset({Status.pending_approval, Status.cancelled}),
    Status.pending_approval: frozenset(
        {Status.approved, Status.scheduled, Status.draft, Status.cancelled}
    ),
    Status.approved: frozenset({Status.sending, Status.quota_exhausted, Status.cancelled}),
    Status.scheduled: frozenset({Status.sending, Status.quota_exhausted, Status.cancelled}),
    Status.sending: frozenset(
        {
            Status.sent,
            Status.partially_failed,
            Status.failed,
            Status.needs_attention,
            Status.quota_exhausted,
            Status.cancelled,
        }
    ),
    Status.quota_exhausted: frozenset({Status.sending, Status.cancelled}),
    Status.sent: frozenset(),
    Status.partially_failed: frozenset(),
    Status.failed: frozenset(),
    Status.cancelled: frozenset(),
    Status.needs_attention: frozenset(),
}


def can_move(current: Status | str, target: Status | str) -> bool:
    return Status(target) in TRANSITIONS[Status(current)]


def utf16_units(text: str) -> int:
    """Length as LINE counts it: UTF-16 code units (a character outside the BMP, such as most
    emoji, counts 2)."""
    return len(text.encode("utf-16-le")) // 2


Confidentiality = Literal[1, 2, 3]


class DeliveryContent(BaseModel):
    """What staff compose. G3 (only class 1 may be sent) is enforced by the service, so a
    class 2/3 item is refused with a clear message rather than a schema error."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    title: Annotated[str, Field(min_length=1, max_length=100)]
    """Internal title for staff screens (never sent)."""
    confidentiality: Confidentiality = 1
    """機密性1/2/3: only 1 may be sent through LINE (G3)."""
    messages: Annotated[
        tuple[MessageText | RichItem, ...], Field(min_length=1, max_length=MAX_MESSAGES)
    ]
    """1–5 messages in any mix: a string is a text message (≤ 5,000 UTF-16 code units, no
    control characters); an object is an image, sticker or card (kairand.delivery.messages)."""
    segment: SegmentFilter
    notification_disabled: bool = False
    scheduled_at: dt.datetime | None = None
    """None: send as soon as approved. Must carry a time zone."""
    urgent: bool = False
    """Urgent deliveries are sent before any other waiting or running delivery."""

    @field_validator("title")
    @classmethod
    def _title_printable(cls, title: str) -> str:
        _refuse_controls(title, frozenset())
        return title

    @field_validator("messages")
    @classmethod
    def _text_limits(cls, messages: tuple[MessageItem, ...]) -> tuple[MessageItem, ...]:
        for i, item in enumerate(messages):
            if isinstance(item, str):
                problem = check_text(i, item, MAX_TEXT_UNITS)
                if problem:
                    raise ValueError(problem)
        return messages

    @field_validator("scheduled_at")
    @classmethod
    def _aware(cls, value: dt.datetime | None) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("scheduled_at needs a time zone (e.g. +09:00)")
        return value

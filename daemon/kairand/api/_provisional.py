"""Stand-ins for kairand.segments.model.SegmentFilter and kairand.delivery.model.DeliveryContent
/ Status, written from CONTRACTS.md, used by api.schema only until the segments and delivery
work lands (then schema re-exports the real ones and this module is deleted)."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

Code = Annotated[str, Field(pattern=r"^[a-z0-9_]{1,32}$")]


class ChoiceCondition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    question: Code
    any_of: Annotated[list[Code], Field(min_length=1, max_length=100)]


class YearCondition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    question: Code
    age_from: Annotated[int, Field(ge=0, le=150)] | None = None
    age_to: Annotated[int, Field(ge=0, le=150)] | None = None


class SegmentFilter(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    all_registered: bool = False
    conditions: Annotated[list[ChoiceCondition | YearCondition], Field(max_length=20)] = []


def _utf16_fits(text: str) -> str:
    if len(text.encode("utf-16-le")) // 2 > 5000:
        raise ValueError("a message is at most 5,000 characters (UTF-16 units)")
    return text


Message = Annotated[str, Field(min_length=1), AfterValidator(_utf16_fits)]


class DeliveryContent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    title: Annotated[str, Field(min_length=1, max_length=100)]
    confidentiality: Literal[1, 2, 3]
    messages: Annotated[list[Message], Field(min_length=1, max_length=5)]
    segment: SegmentFilter
    notification_disabled: bool = False
    scheduled_at: dt.datetime | None = None
    urgent: bool = False


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

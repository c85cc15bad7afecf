"""Japanese words shown on screen for the code names of the API (GLOSSARY.md, one word per idea)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from kairand.api.schema import ROLE_LABELS, STATUS_LABELS

CONFIDENTIALITY_BLOCKED_REASON = (
    "機密性区分2・3の情報はLINEで配信できません。"
    "LINEの通信はLINE社のサーバーを経由するため、公開できる情報（区分1）だけを配信してください。"
)

# Statuses in which the sender may still be stopped with 配信中止.
CANCELLABLE = frozenset({"approved", "scheduled", "sending", "quota_exhausted", "needs_attention"})
# Statuses after which nothing changes any more.
FINISHED = frozenset({"sent", "partially_failed", "failed", "cancelled"})


def status_label(status: str) -> str:
    return STATUS_LABELS.get(status, status)


def roles_label(roles: Sequence[str]) -> str:
    return "・".join(ROLE_LABELS.get(r, r) for r in roles) or "（役割なし）"


def utf16_length(text: str) -> int:
    """LINE counts a text message's length in UTF-16 code units (an emoji outside the BMP is 2)."""
    return len(text.encode("utf-16-le")) // 2


MESSAGE_MAX_UTF16 = 5000
MESSAGES_MAX = 5


def count_cell(value: int | None, threshold_label: str = "<10") -> str:
    """Aggregates below the small-cell threshold arrive as None: show them as "<10" (W4)."""
    return threshold_label if value is None else f"{value:,}"


WEEKDAYS = "月火水木金土日"
JST = dt.timezone(dt.timedelta(hours=9), "JST")


def format_datetime(value: dt.datetime | None, *, with_year: bool = False) -> str:
    """A wire datetime as staff read it, in Japan time: 11月25日(水) 10:05."""
    if value is None:
        return "—"
    local = value.astimezone(JST) if value.tzinfo else value
    text = f"{local.month}月{local.day}日({WEEKDAYS[local.weekday()]}) {local:%H:%M}"
    return f"{local.year}年" + text if with_year else text


def format_day(value: dt.date) -> str:
    return f"{value.month}/{value.day}({WEEKDAYS[value.weekday()]})"


def format_compact(value: dt.datetime, *, short: bool = False) -> str:
    """For tables: 2026/11/25 10:05 (Japan time); SHORT (narrow screens): 11/25 10:05."""
    local = value.astimezone(JST) if value.tzinfo else value
    return f"{local:%m/%d %H:%M}" if short else f"{local:%Y/%m/%d %H:%M}"


def channel_split(line: int | None, mail: int) -> str:
    """An audience by channel, e.g. 「LINE 1,234 人・メール 56 人」 (counts only)."""
    line_text = "—" if line is None else f"{line:,}"
    return f"LINE {line_text} 人・メール {mail:,} 人"

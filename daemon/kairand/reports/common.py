"""Shared by the documents: periods in Japan time, Japanese labels and date formatting."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from kairand.errors import UsageError
from kairand.timeutil import JST

REASON_LABELS = {
    "unfollow": "ブロック（友だち解除）による削除",
    "request": "ご本人の申し出による削除",
    "annual_expiry": "年度末削除",
    "retention": "保存期間の経過による削除",
    "contract_end": "契約終了による削除",
}

OUTCOME_LABELS = {"allowed": "許可", "denied": "拒否", "ok": "成功", "failed": "失敗"}


@dataclass(frozen=True)
class Period:
    first: dt.date
    last: dt.date  # inclusive

    @property
    def start(self) -> int:
        return int(dt.datetime.combine(self.first, dt.time(), JST).timestamp())

    @property
    def end(self) -> int:
        """Exclusive end: midnight after the last day, Japan time."""
        next_day = self.last + dt.timedelta(days=1)
        return int(dt.datetime.combine(next_day, dt.time(), JST).timestamp())

    def ja(self) -> str:
        return f"{date_ja(self.first)} 〜 {date_ja(self.last)}"


def parse_period(first: str, last: str) -> Period:
    try:
        period = Period(dt.date.fromisoformat(first), dt.date.fromisoformat(last))
    except ValueError:
        raise UsageError(
            f"dates must look like 2027-03-31 (got {first!r} and {last!r})",
            "pass --from YYYY-MM-DD --to YYYY-MM-DD (both days included, Japan time)",
        ) from None
    if period.first > period.last:
        raise UsageError("--from is after --to", "swap the two dates")
    return period


def date_ja(day: dt.date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


def datetime_ja(unix_seconds: float) -> str:
    moment = dt.datetime.fromtimestamp(unix_seconds, JST)
    return f"{date_ja(moment.date())} {moment.hour:02d}:{moment.minute:02d}（日本時間）"


def iso_jst(unix_seconds: float) -> str:
    return dt.datetime.fromtimestamp(unix_seconds, JST).isoformat(timespec="seconds")

"""Reservation statistics (W4): counts only — never a name, a phone or a resident.

Bookings, cancellations, attendance and no-shows by service, date, weekday and time slot, and
the lead time (days between booking and the booked date). Cells below the small-cell threshold
are shown as "<k" (kairand.api.statistics); the CSV is UTF-8 with a BOM so Excel opens it
with the Japanese intact. Pure: rows in, tables out.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from kairand.reservations.calendar import JST, parse_key
from kairand.reservations.model import WEEKDAY_LABELS

OUTCOMES = ("booked", "cancelled", "attended", "no_show")
OUTCOME_LABELS = {"booked": "予約", "cancelled": "取消", "attended": "来庁", "no_show": "不来庁"}
DIMENSIONS = ("service", "date", "weekday", "time", "lead_days")
DIMENSION_LABELS = {
    "service": "窓口業務",
    "date": "日付",
    "weekday": "曜日",
    "time": "時間帯",
    "lead_days": "予約から来庁までの日数",
}
LEAD_BUCKETS = ((0, 1, "当日・前日"), (2, 3, "2〜3日"), (4, 7, "4〜7日"), (8, 14, "8〜14日"))


@dataclass(frozen=True)
class Row:
    """One booking, as statistics see it: no person."""

    service: str
    slot: str
    state: str
    created_at: int


@dataclass(frozen=True)
class Line:
    dimension: str
    key: str
    label: str
    counts: dict[str, int]


def _lead_label(days: int) -> str:
    for low, high, label in LEAD_BUCKETS:
        if low <= days <= high:
            return label
    return "15日以上"


def _keys(row: Row, service_names: dict[str, str]) -> dict[str, tuple[str, str]]:
    start = parse_key(row.slot)
    assert start is not None
    made = dt.datetime.fromtimestamp(row.created_at, JST).date()
    lead = (start.date() - made).days
    return {
        "service": (row.service, service_names.get(row.service, row.service)),
        "date": (start.date().isoformat(), f"{start.month}/{start.day}"),
        "weekday": (str(start.weekday()), WEEKDAY_LABELS[start.weekday()]),
        "time": (f"{start.hour:02d}:{start.minute:02d}", f"{start.hour}:{start.minute:02d}"),
        "lead_days": (f"{min(lead, 15):02d}", _lead_label(lead)),
    }


def tabulate(rows: Iterable[Row], service_names: dict[str, str]) -> list[Line]:
    """Counts per dimension value: 予約 (every booking made), 取消, 来庁, 不来庁."""
    tables: dict[tuple[str, str], Counter[str]] = {}
    labels: dict[tuple[str, str], str] = {}
    for row in rows:
        for dimension, (key, label) in _keys(row, service_names).items():
            counter = tables.setdefault((dimension, key), Counter())
            labels[(dimension, key)] = label
            counter["booked"] += 1
            if row.state in ("cancelled", "attended", "no_show"):
                counter[row.state] += 1
    out = [
        Line(d, k, labels[(d, k)], {o: tables[(d, k)][o] for o in OUTCOMES})
        for d, k in sorted(tables, key=lambda dk: (DIMENSIONS.index(dk[0]), dk[1]))
    ]
    return out


def shown(count: int, k: int) -> str:
    """A count as published: below K it is "<K" (W4 small cells)."""
    return f"<{k}" if 0 < count < k else str(count)


Shown = dict[tuple[str, str, str], str]
"""(dimension, key, outcome) → the count as published."""


def to_csv(lines: Sequence[Line], k: int, shown_as: Shown | None = None) -> bytes:
    """UTF-8 with BOM, one row per dimension value, small cells suppressed (SHOWN_AS: the
    published display of each cell, when the caller applied complementary suppression)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["集計区分", "値", *(OUTCOME_LABELS[o] for o in OUTCOMES)])
    for line in lines:
        writer.writerow(
            [
                DIMENSION_LABELS[line.dimension],
                line.label,
                *(
                    shown_as[(line.dimension, line.key, o)]
                    if shown_as is not None
                    else shown(line.counts[o], k)
                    for o in OUTCOMES
                ),
            ]
        )
    return "\ufeff".encode() + buffer.getvalue().encode("utf-8")

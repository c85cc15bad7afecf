"""Queue statistics (W4): tickets, wait and service time by hour and service, no-shows.

Pure: from ticket rows (which hold no person) to aggregate rows. Counts below the small-cell
threshold are suppressed (None) as in every other Kairan export; a CSV is UTF-8 with a BOM so
Excel opens it in Japanese.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from kairand.timeutil import JST


@dataclass(frozen=True)
class Row:
    day: str
    hour: int
    service: str
    tickets: int | None
    served: int | None
    absent: int | None
    cancelled: int | None
    wait_minutes_mean: float | None
    service_minutes_mean: float | None


@dataclass(frozen=True)
class TicketFacts:
    service: str
    state: str
    issued_at: float
    called_at: float | None
    serving_at: float | None
    finished_at: float | None


def _shown(n: int, k: int) -> int | None:
    return None if 0 < n < k else n


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values) / 60, 1) if values else None


def aggregate(tickets: Iterable[TicketFacts], k: int) -> list[Row]:
    """One row per (day, hour issued, service) with tickets; transfers count in the target."""
    groups: dict[tuple[str, int, str], list[TicketFacts]] = defaultdict(list)
    for t in tickets:
        if t.state == "transferred":
            continue
        moment = dt.datetime.fromtimestamp(t.issued_at, JST)
        groups[(moment.date().isoformat(), moment.hour, t.service)].append(t)
    rows = []
    for (day, hour, service), group in sorted(groups.items()):
        waits = [t.called_at - t.issued_at for t in group if t.called_at is not None]
        serves = [
            t.finished_at - t.serving_at
            for t in group
            if t.state == "done" and t.serving_at is not None and t.finished_at is not None
        ]
        rows.append(
            Row(
                day,
                hour,
                service,
                _shown(len(group), k),
                _shown(sum(1 for t in group if t.state == "done"), k),
                _shown(sum(1 for t in group if t.state == "absent"), k),
                _shown(sum(1 for t in group if t.state == "cancelled"), k),
                _mean(waits) if len(group) >= k else None,
                _mean(serves) if len(group) >= k else None,
            )
        )
    return rows


HEADER = (
    "日付",
    "時台",
    "窓口業務",
    "発券数",
    "対応数",
    "不在",
    "取消",
    "平均待ち時間（分）",
    "平均対応時間（分）",
)


def to_csv(rows: Iterable[Row], k: int, names: dict[str, str]) -> bytes:
    """UTF-8 with BOM; a suppressed cell reads "<k"."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)

    def cell(value: float | None, count: bool) -> str:
        if value is None:
            return f"<{k}" if count else ""
        return str(value)

    for r in rows:
        writer.writerow(
            (
                r.day,
                f"{r.hour}時",
                names.get(r.service, r.service),
                cell(r.tickets, True),
                cell(r.served, True),
                cell(r.absent, True),
                cell(r.cancelled, True),
                cell(r.wait_minutes_mean, False),
                cell(r.service_minutes_mean, False),
            )
        )
    return "\ufeff".encode() + out.getvalue().encode("utf-8")

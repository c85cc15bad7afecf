"""Daily aggregate counters (Japan time days). Never per-person."""

from __future__ import annotations

import datetime as dt

from kairand.store.database import Connection
from kairand.timeutil import JST


def day_of(unix_seconds: float) -> str:
    return dt.datetime.fromtimestamp(unix_seconds, JST).date().isoformat()


def increment(conn: Connection, metric: str, at: float, by: int = 1) -> None:
    conn.execute(
        "INSERT INTO daily_counts (day, metric, count) VALUES (?, ?, ?)"
        " ON CONFLICT (day, metric) DO UPDATE SET count = count + excluded.count",
        (day_of(at), metric, by),
    )


def series(conn: Connection, metric: str, first_day: str, last_day: str) -> dict[str, int]:
    rows = conn.execute(
        "SELECT day, count FROM daily_counts WHERE metric = ? AND day BETWEEN ? AND ? ORDER BY day",
        (metric, first_day, last_day),
    ).fetchall()
    return {day: count for day, count in rows}

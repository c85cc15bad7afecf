"""Aggregate figures for the staff dashboard and attribute statistics (W4). Counts only: no
query here returns a resident row, a LINE user id or an individual answer."""

from __future__ import annotations

from dataclasses import dataclass

from kairand.store import metrics, settings
from kairand.store.database import Connection

ACTIVE_STATUSES = ("approved", "scheduled", "sending")


@dataclass(frozen=True)
class Counters:
    friends: int
    registered: int
    deliveries_today: int
    messages_sent_today: int
    active_deliveries: int
    pending_approval: int


def counters(conn: Connection, today_start: int, today: str) -> Counters:
    """TODAY_START: Unix seconds of 00:00 Japan time today; TODAY: its ISO date."""
    friends, registered = conn.execute(
        "SELECT count(*), count(registered_at) FROM residents"
    ).fetchone()
    started = conn.execute(
        "SELECT count(*) FROM deliveries WHERE started_at >= ?", (today_start,)
    ).fetchone()[0]
    placeholders = ", ".join("?" for _ in ACTIVE_STATUSES)
    active = conn.execute(
        f"SELECT count(*) FROM deliveries WHERE status IN ({placeholders})", ACTIVE_STATUSES
    ).fetchone()[0]
    pending = conn.execute(
        "SELECT count(*) FROM deliveries WHERE status = 'pending_approval'"
    ).fetchone()[0]
    sent = metrics.series(conn, "delivery_sent", today, today).get(today, 0)
    return Counters(
        int(friends), int(registered), int(started), int(sent), int(active), int(pending)
    )


def daily(conn: Connection, first_day: str, last_day: str) -> dict[str, dict[str, int]]:
    """metric -> day -> count for follows and unfollows between the two ISO days."""
    return {m: metrics.series(conn, m, first_day, last_day) for m in ("follow", "unfollow")}


def health_settings(conn: Connection) -> dict[str, object]:
    keys = (
        "webhook.last_seen_at",
        "line.last_ok_at",
        "line.last_error",
        "tls.not_after",
        "backup.last_ok_at",
    )
    return {k: settings.get(conn, k) for k in keys}


def record_line_call(conn: Connection, ok: bool, now: int, error: str = "") -> None:
    """Health keys written by whoever calls LINE (here: the dashboard's quota look-up)."""
    if ok:
        settings.put(conn, "line.last_ok_at", now)
        settings.put(conn, "line.last_error", None)
    else:
        settings.put(conn, "line.last_error", {"at": now, "error": error[:200]})


@dataclass(frozen=True)
class AnswerCounts:
    registered: int
    answered: dict[str, int]
    """question -> registered residents with at least one answer to it."""
    values: dict[str, dict[str, int]]
    """question -> value (option code, or the decade "1980s" for year questions) -> residents."""


def answer_counts(conn: Connection, year_questions: frozenset[str]) -> AnswerCounts:
    """Counts over registered residents. Year questions are grouped by decade of `number`, so
    a birth year never forms its own (tiny) cell."""
    registered = conn.execute(
        "SELECT count(*) FROM residents WHERE registered_at IS NOT NULL"
    ).fetchone()[0]
    answered = {
        q: int(n)
        for q, n in conn.execute(
            "SELECT a.question, count(DISTINCT a.resident_id) FROM answers a"
            " JOIN residents r ON r.id = a.resident_id"
            " WHERE r.registered_at IS NOT NULL GROUP BY a.question"
        )
    }
    values: dict[str, dict[str, int]] = {}
    for question, value, n in conn.execute(
        "SELECT a.question, a.value, count(DISTINCT a.resident_id) FROM answers a"
        " JOIN residents r ON r.id = a.resident_id"
        " WHERE r.registered_at IS NOT NULL GROUP BY a.question, a.value"
    ):
        if question in year_questions:
            continue
        values.setdefault(question, {})[value] = int(n)
    for question in year_questions:
        for decade, n in conn.execute(
            "SELECT (a.number / 10) * 10, count(DISTINCT a.resident_id) FROM answers a"
            " JOIN residents r ON r.id = a.resident_id"
            " WHERE r.registered_at IS NOT NULL AND a.question = ? AND a.number IS NOT NULL"
            " GROUP BY 1",
            (question,),
        ):
            values.setdefault(question, {})[f"{int(decade)}s"] = int(n)
    return AnswerCounts(int(registered), answered, values)

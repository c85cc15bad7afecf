"""Recurring delivery series and their occurrences. Times are Unix seconds."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kairand.store.database import Connection

_COLS = (
    "id, title, content, rule, status, status_reason, author, approver, reject_comment,"
    " created_at, updated_at, submitted_at, approved_at, cursor, occurrences_done,"
    " pending_title, pending_content, pending_rule, pending_by, pending_at"
)


@dataclass(frozen=True)
class SeriesRow:
    id: int
    title: str
    content: dict[str, Any]
    rule: dict[str, Any]
    status: str
    status_reason: str | None
    author: str
    approver: str | None
    reject_comment: str | None
    created_at: int
    updated_at: int
    submitted_at: int | None
    approved_at: int | None
    cursor: int | None
    occurrences_done: int
    pending: PendingChange | None = None
    """A change to the approved series awaiting approval."""


@dataclass(frozen=True)
class PendingChange:
    title: str
    content: dict[str, Any]
    rule: dict[str, Any]
    by: str
    at: int


def _row(r: tuple[Any, ...]) -> SeriesRow:
    pending = (
        PendingChange(r[15], json.loads(r[16]), json.loads(r[17]), r[18], r[19])
        if r[16] is not None
        else None
    )
    return SeriesRow(r[0], r[1], json.loads(r[2]), json.loads(r[3]), *r[4:15], pending=pending)  # type: ignore[misc]


def update_definition(
    conn: Connection,
    series_id: int,
    title: str,
    content: dict[str, Any],
    rule: dict[str, Any],
    now: int,
) -> None:
    """Edit a series not yet approved (draft or pending approval) in place."""
    conn.execute(
        "UPDATE series SET title = ?, content = ?, rule = ?, updated_at = ? WHERE id = ?",
        (
            title,
            json.dumps(content, ensure_ascii=False),
            json.dumps(rule, ensure_ascii=False),
            now,
            series_id,
        ),
    )


def set_pending_change(
    conn: Connection,
    series_id: int,
    title: str,
    content: dict[str, Any],
    rule: dict[str, Any],
    by: str,
    now: int,
) -> None:
    conn.execute(
        "UPDATE series SET pending_title = ?, pending_content = ?, pending_rule = ?,"
        " pending_by = ?, pending_at = ?, updated_at = ? WHERE id = ?",
        (
            title,
            json.dumps(content, ensure_ascii=False),
            json.dumps(rule, ensure_ascii=False),
            by,
            now,
            now,
            series_id,
        ),
    )


def apply_pending_change(conn: Connection, series_id: int, cursor: int, now: int) -> None:
    """The approved change becomes the series; occurrences continue after CURSOR."""
    conn.execute(
        "UPDATE series SET title = pending_title, content = pending_content,"
        " rule = pending_rule, cursor = max(coalesce(cursor, 0), ?), updated_at = ?,"
        " pending_title = NULL, pending_content = NULL, pending_rule = NULL,"
        " pending_by = NULL, pending_at = NULL WHERE id = ? AND pending_content IS NOT NULL",
        (cursor, now, series_id),
    )


def clear_pending_change(conn: Connection, series_id: int, now: int) -> None:
    conn.execute(
        "UPDATE series SET pending_title = NULL, pending_content = NULL, pending_rule = NULL,"
        " pending_by = NULL, pending_at = NULL, updated_at = ? WHERE id = ?",
        (now, series_id),
    )


def insert(
    conn: Connection,
    title: str,
    content: dict[str, Any],
    rule: dict[str, Any],
    author: str,
    now: int,
) -> int:
    cur = conn.execute(
        "INSERT INTO series (title, content, rule, status, author, created_at, updated_at)"
        " VALUES (?, ?, ?, 'draft', ?, ?, ?)",
        (
            title,
            json.dumps(content, ensure_ascii=False),
            json.dumps(rule, ensure_ascii=False),
            author,
            now,
            now,
        ),
    )
    return int(cur.lastrowid or 0)


def get(conn: Connection, series_id: int) -> SeriesRow | None:
    r = conn.execute(f"SELECT {_COLS} FROM series WHERE id = ?", (series_id,)).fetchone()
    return _row(r) if r else None


def list_rows(conn: Connection, statuses: tuple[str, ...] | None = None) -> list[SeriesRow]:
    if statuses:
        marks = ", ".join("?" for _ in statuses)
        rows = conn.execute(
            f"SELECT {_COLS} FROM series WHERE status IN ({marks}) ORDER BY id DESC", statuses
        )
    else:
        rows = conn.execute(f"SELECT {_COLS} FROM series ORDER BY id DESC LIMIT 200")
    return [_row(r) for r in rows]


def set_status(
    conn: Connection,
    series_id: int,
    expected: tuple[str, ...],
    status: str,
    now: int,
    **fields: Any,
) -> bool:
    allowed = {"status_reason", "approver", "reject_comment", "submitted_at", "approved_at"}
    if set(fields) - allowed:
        raise ValueError(f"not a settable series field: {sorted(set(fields) - allowed)}")
    sets = ", ".join(["status = ?", "updated_at = ?", *(f"{k} = ?" for k in fields)])
    marks = ", ".join("?" for _ in expected)
    cur = conn.execute(
        f"UPDATE series SET {sets} WHERE id = ? AND status IN ({marks})",
        (status, now, *fields.values(), series_id, *expected),
    )
    return cur.rowcount == 1


def record_occurrence(
    conn: Connection, series_id: int, at: int, outcome: str, delivery_id: int | None, now: int
) -> bool:
    """Note one occurrence as handled and move the cursor; False if it already was (so it can
    never be created twice, whatever crashed in between)."""
    cur = conn.execute(
        "INSERT OR IGNORE INTO series_occurrences (series_id, at, delivery_id, outcome, noted_at)"
        " VALUES (?, ?, ?, ?, ?)",
        (series_id, at, delivery_id, outcome, now),
    )
    if cur.rowcount != 1:
        return False
    conn.execute(
        "UPDATE series SET cursor = max(coalesce(cursor, 0), ?),"
        " occurrences_done = occurrences_done + ?, updated_at = ? WHERE id = ?",
        (at, 1 if outcome == "created" else 0, now, series_id),
    )
    return True


def occurrence_exists(conn: Connection, series_id: int, at: int) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM series_occurrences WHERE series_id = ? AND at = ?", (series_id, at)
        ).fetchone()
        is not None
    )


def insert_occurrence_delivery(
    conn: Connection, row: SeriesRow, content: dict[str, Any], at: int, now: int
) -> int:
    """The occurrence's own delivery, approved with the series (scheduled at its time): the
    sender freezes its audience and retry keys when it starts."""
    cur = conn.execute(
        "INSERT INTO deliveries (title, confidentiality, messages, segment, notification_disabled,"
        " urgent, scheduled_at, status, author, approver, created_at, updated_at, submitted_at,"
        " approved_at, series_id, occurrence_at)"
        " VALUES (?, ?, ?, ?, ?, 0, ?, 'scheduled', ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            content["title"],
            content.get("confidentiality", 1),
            json.dumps(content["messages"], ensure_ascii=False),
            json.dumps(content["segment"], ensure_ascii=False),
            int(bool(content.get("notification_disabled"))),
            at,
            row.author,
            row.approver,
            now,
            now,
            row.submitted_at,
            now,
            row.id,
            at,
        ),
    )
    return int(cur.lastrowid or 0)


def history(conn: Connection, series_id: int, limit: int = 20) -> list[tuple[Any, ...]]:
    """(at, outcome, delivery id, delivery status), newest first."""
    return conn.execute(
        "SELECT o.at, o.outcome, o.delivery_id, d.status FROM series_occurrences o"
        " LEFT JOIN deliveries d ON d.id = o.delivery_id WHERE o.series_id = ?"
        " ORDER BY o.at DESC LIMIT ?",
        (series_id, limit),
    ).fetchall()


def scheduled_deliveries(conn: Connection, after: int, before: int) -> list[tuple[Any, ...]]:
    """(id, title, scheduled_at, status) of one-off deliveries to be sent in [after, before)."""
    return conn.execute(
        "SELECT id, title, scheduled_at, status FROM deliveries"
        " WHERE status IN ('pending_approval', 'approved', 'scheduled')"
        " AND scheduled_at >= ? AND scheduled_at < ? ORDER BY scheduled_at",
        (after, before),
    ).fetchall()


def unfinished_occurrence_deliveries(conn: Connection) -> int:
    """Occurrence deliveries not yet finished (training fast-forward waits for them)."""
    row = conn.execute(
        "SELECT count(*) FROM deliveries WHERE series_id IS NOT NULL"
        " AND status IN ('approved', 'scheduled', 'sending')"
    ).fetchone()
    return int(row[0])

"""Webhook inbox: events as received (one write per webhook request), processed by the worker.

A processed row keeps only its dedupe key, type and times: the body and the LINE user id are
emptied in the same transaction as the event's effects (privacy: no message text is kept).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from kairand.store import metrics, settings
from kairand.store.database import Connection

STATES = ("pending", "done", "ignored", "failed")


@dataclass(frozen=True)
class IncomingEvent:
    webhook_event_id: str
    line_user_id: str | None
    event_type: str
    event_timestamp: int
    body: str


@dataclass(frozen=True)
class PendingEvent:
    id: int
    webhook_event_id: str
    line_user_id: str | None
    event_type: str
    event_timestamp: int
    body: str
    received_at: int = 0
    """Epoch seconds the webhook stored it (the reply token's life is counted from then)."""


ROWS_PER_INSERT = 500
"""Events stored by one multi-row INSERT (6 parameters each, well below SQLite's 32,766)."""


def _insert_rows(conn: Connection, events: list[IncomingEvent], now: float) -> int:
    """One INSERT per ROWS_PER_INSERT events instead of one per event (a webhook body carries
    up to about a hundred); duplicates (same webhookEventId) are ignored. Returns how many
    were new."""
    added = 0
    for start in range(0, len(events), ROWS_PER_INSERT):
        chunk = events[start : start + ROWS_PER_INSERT]
        values: list[str | int | None] = []
        for event in chunk:
            values += (
                event.webhook_event_id,
                event.line_user_id,
                event.event_type,
                event.event_timestamp,
                int(now),
                event.body,
            )
        cursor = conn.execute(
            "INSERT OR IGNORE INTO inbox"
            " (webhook_event_id, line_user_id, event_type, event_timestamp, received_at, body)"
            " VALUES " + ", ".join(["(?, ?, ?, ?, ?, ?)"] * len(chunk)),
            values,
        )
        added += cursor.rowcount
    return added


def insert_bodies(conn: Connection, bodies: list[list[IncomingEvent]], now: float) -> list[int]:
    """Store every event of several webhook bodies (one group commit); duplicates (same
    webhookEventId) are ignored. Returns how many of each body's were new. Records
    webhook.last_seen_at and the webhook_event metric once for all of them."""
    added = [_insert_rows(conn, events, now) for events in bodies]
    settings.put(conn, "webhook.last_seen_at", int(now))
    if sum(added):
        metrics.increment(conn, "webhook_event", now, sum(added))
    return added


def insert_events(conn: Connection, events: list[IncomingEvent], now: float) -> int:
    """Store every event of one webhook body (insert_bodies for one body)."""
    return insert_bodies(conn, [events], now)[0]


def pending(conn: Connection, limit: int) -> list[PendingEvent]:
    """The oldest pending events; one resident's events come out in timestamp order."""
    rows = conn.execute(
        "SELECT id, webhook_event_id, line_user_id, event_type, event_timestamp, body,"
        " received_at FROM inbox WHERE state = 'pending' ORDER BY event_timestamp, id LIMIT ?",
        (limit,),
    ).fetchall()
    return [PendingEvent(*row) for row in rows]


def finish(conn: Connection, inbox_id: int, state: str, now: float) -> None:
    """Mark an event processed and forget its body and sender (same transaction as effects)."""
    if state not in STATES or state == "pending":
        raise ValueError(f"bad inbox state {state!r}")
    conn.execute(
        "UPDATE inbox SET state = ?, processed_at = ?, body = '', line_user_id = NULL WHERE id = ?",
        (state, int(now), inbox_id),
    )


def delete_for_user(conn: Connection, line_user_id: str, keep_pending_after_ms: int | None) -> int:
    """Purge: remove the user's inbox rows. Processed rows no longer carry the user id, so this
    hits pending ones. With KEEP_PENDING_AFTER_MS (the timestamp of the event being processed)
    pending events from then on are kept: the current one (the worker finishes it, which keeps
    its dedupe key) and later ones such as a re-follow after the unfollow."""
    if keep_pending_after_ms is None:
        return conn.execute("DELETE FROM inbox WHERE line_user_id = ?", (line_user_id,)).rowcount
    return conn.execute(
        "DELETE FROM inbox WHERE line_user_id = ?"
        " AND NOT (state = 'pending' AND event_timestamp >= ?)",
        (line_user_id, keep_pending_after_ms),
    ).rowcount


def counts(conn: Connection) -> dict[str, int]:
    rows = conn.execute("SELECT state, count(*) FROM inbox GROUP BY state").fetchall()
    return {state: int(n) for state, n in rows}


def count_pending(conn: Connection) -> int:
    row = conn.execute("SELECT count(*) FROM inbox WHERE state = 'pending'").fetchone()
    return int(row[0])


@contextlib.contextmanager
def event_savepoint(conn: Connection) -> Iterator[None]:
    """One event's effects inside the batch transaction: undone alone if processing fails."""
    conn.execute("SAVEPOINT inbox_event")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK TO inbox_event")
        conn.execute("RELEASE inbox_event")
        raise
    conn.execute("RELEASE inbox_event")


@contextlib.contextmanager
def batch_savepoint(conn: Connection) -> Iterator[None]:
    """A whole batch's effects inside a larger transaction (the webhook's insert): undone
    together if processing fails, leaving the rest of the transaction to commit."""
    conn.execute("SAVEPOINT inbox_batch")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK TO inbox_batch")
        conn.execute("RELEASE inbox_batch")
        raise
    conn.execute("RELEASE inbox_batch")


def prune_processed(conn: Connection, received_before: int) -> int:
    """Drop processed rows received before the given time (they hold only a dedupe key, type
    and times). LINE redelivers for minutes, not days, so a week-old key is no longer needed."""
    return conn.execute(
        "DELETE FROM inbox WHERE state != 'pending' AND received_at < ?", (received_before,)
    ).rowcount

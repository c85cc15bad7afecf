"""SQL of the same-day queue. Every function runs inside the caller's transaction;
the rules (which state may follow which, who is next) are kairand.queue.core's."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kairand.store.database import Connection

_COLUMNS = (
    "id, day, service, number, label, channel, resident_id, state, priority, counter, recalls,"
    " transferred_to, issued_at, called_at, serving_at, finished_at"
)


@dataclass(frozen=True)
class Ticket:
    id: int
    day: str
    service: str
    number: int
    label: str
    channel: str
    resident_id: int | None
    state: str
    priority: bool
    counter: int | None
    recalls: int
    transferred_to: int | None
    issued_at: float
    called_at: float | None
    serving_at: float | None
    finished_at: float | None


def _ticket(row: Sequence[Any]) -> Ticket:
    return Ticket(
        int(row[0]),
        row[1],
        row[2],
        int(row[3]),
        row[4],
        row[5],
        row[6],
        row[7],
        bool(row[8]),
        row[9],
        int(row[10]),
        row[11],
        float(row[12]),
        row[13],
        row[14],
        row[15],
    )


def insert_ticket(
    conn: Connection,
    day: str,
    service: str,
    prefix: str,
    channel: str,
    resident_id: int | None,
    priority: bool,
    now: float,
) -> Ticket:
    """The next number of (DAY, SERVICE): max + 1 under the single writer's transaction, so
    numbers never repeat or skip (UNIQUE (day, service, number) backs it)."""
    row = conn.execute(
        "SELECT coalesce(max(number), 0) + 1 FROM queue_tickets WHERE day = ? AND service = ?",
        (day, service),
    ).fetchone()
    number = int(row[0])
    label = f"{prefix}-{number:03d}"
    cur = conn.execute(
        """INSERT INTO queue_tickets (day, service, number, label, channel, resident_id,
               priority, issued_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
        (day, service, number, label, channel, resident_id, int(priority), now),
    )
    ticket = get(conn, int(cur.lastrowid or 0))
    assert ticket is not None
    return ticket


def get(conn: Connection, ticket_id: int) -> Ticket | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM queue_tickets WHERE id = ?", (ticket_id,)
    ).fetchone()
    return _ticket(row) if row else None


def of_day(conn: Connection, day: str, service: str | None = None) -> list[Ticket]:
    if service is None:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM queue_tickets WHERE day = ? ORDER BY id", (day,)
        ).fetchall()
    else:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM queue_tickets WHERE day = ? AND service = ? ORDER BY id",
            (day, service),
        ).fetchall()
    return [_ticket(r) for r in rows]


def in_state(conn: Connection, day: str, states: Sequence[str]) -> list[Ticket]:
    marks = ", ".join("?" for _ in states)
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM queue_tickets WHERE day = ? AND state IN ({marks}) ORDER BY id",
        (day, *states),
    ).fetchall()
    return [_ticket(r) for r in rows]


def open_before(conn: Connection, day: str) -> list[Ticket]:
    """Tickets of earlier days still open (the daemon was down at closing time)."""
    rows = conn.execute(
        f"""SELECT {_COLUMNS} FROM queue_tickets
            WHERE day < ? AND state IN ('waiting', 'called', 'serving') ORDER BY id""",
        (day,),
    ).fetchall()
    return [_ticket(r) for r in rows]


def of_resident(conn: Connection, resident_id: int, day: str) -> list[Ticket]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM queue_tickets WHERE resident_id = ? AND day = ? ORDER BY id",
        (resident_id, day),
    ).fetchall()
    return [_ticket(r) for r in rows]


def update(conn: Connection, ticket_id: int, **fields: Any) -> None:
    allowed = {
        "state",
        "counter",
        "recalls",
        "transferred_to",
        "closed_by",
        "called_at",
        "serving_at",
        "finished_at",
        "resident_id",
        "priority",
    }
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"not a ticket column: {sorted(unknown)}")
    assignments = ", ".join(f"{name} = ?" for name in fields)
    conn.execute(
        f"UPDATE queue_tickets SET {assignments} WHERE id = ?", (*fields.values(), ticket_id)
    )


def service_seconds(conn: Connection, day: str, service: str) -> list[float]:
    """The day's observed service times (serving → done) of SERVICE."""
    rows = conn.execute(
        """SELECT finished_at - serving_at FROM queue_tickets
           WHERE day = ? AND service = ? AND state = 'done' AND serving_at IS NOT NULL
             AND finished_at IS NOT NULL""",
        (day, service),
    ).fetchall()
    return [float(r[0]) for r in rows]


def range_rows(conn: Connection, first: str, last: str) -> list[Ticket]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM queue_tickets WHERE day BETWEEN ? AND ? ORDER BY id",
        (first, last),
    ).fetchall()
    return [_ticket(r) for r in rows]


# -- QR tokens --------------------------------------------------------------------------------


def add_token(conn: Connection, token_hash: bytes, ticket_id: int, expires_at: float) -> None:
    conn.execute(
        "INSERT INTO queue_tokens (token_hash, ticket_id, expires_at) VALUES (?, ?, ?)",
        (token_hash, ticket_id, expires_at),
    )


def token(conn: Connection, token_hash: bytes) -> tuple[int, float, float | None] | None:
    """(ticket id, expires at, used at) of a token, or None when no such token exists."""
    row = conn.execute(
        "SELECT ticket_id, expires_at, used_at FROM queue_tokens WHERE token_hash = ?",
        (token_hash,),
    ).fetchone()
    return (int(row[0]), float(row[1]), row[2]) if row else None


def use_token(conn: Connection, token_hash: bytes, now: float) -> bool:
    """Mark the token used; False when it was used already (single use)."""
    cur = conn.execute(
        "UPDATE queue_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL",
        (now, token_hash),
    )
    return cur.rowcount == 1


def forget_expired_tokens(conn: Connection, now: float) -> int:
    return conn.execute("DELETE FROM queue_tokens WHERE expires_at <= ?", (now,)).rowcount


# -- counters ---------------------------------------------------------------------------------


def set_paused(conn: Connection, number: int, paused: bool, actor: str, now: float) -> None:
    conn.execute(
        """INSERT INTO queue_counters (number, paused, updated_at, updated_by)
           VALUES (?, ?, ?, ?)
           ON CONFLICT (number) DO UPDATE SET paused = excluded.paused,
               updated_at = excluded.updated_at, updated_by = excluded.updated_by""",
        (number, int(paused), now, actor),
    )


def paused_counters(conn: Connection) -> set[int]:
    return {int(r[0]) for r in conn.execute("SELECT number FROM queue_counters WHERE paused = 1")}


# -- pushes -----------------------------------------------------------------------------------


def reserve_push(conn: Connection, ticket_id: int, kind: str, retry_key: str, now: float) -> bool:
    """Record a push with its retry key; False when that push was recorded before."""
    cur = conn.execute(
        """INSERT OR IGNORE INTO queue_pushes (ticket_id, kind, retry_key, created_at)
           VALUES (?, ?, ?, ?)""",
        (ticket_id, kind, retry_key, now),
    )
    return cur.rowcount == 1


def has_push(conn: Connection, ticket_id: int, kind: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM queue_pushes WHERE ticket_id = ? AND kind = ?", (ticket_id, kind)
    ).fetchone()
    return row is not None


@dataclass(frozen=True)
class PendingPush:
    ticket_id: int
    kind: str
    retry_key: str
    attempts: int
    line_user_id: str | None
    label: str
    counter: int | None
    state: str


def pending_pushes(conn: Connection, limit: int = 200) -> list[PendingPush]:
    rows = conn.execute(
        """SELECT p.ticket_id, p.kind, p.retry_key, p.attempts, r.line_user_id, t.label,
                  t.counter, t.state
           FROM queue_pushes p JOIN queue_tickets t ON t.id = p.ticket_id
           LEFT JOIN residents r ON r.id = t.resident_id
           WHERE p.state = 'pending' ORDER BY p.created_at LIMIT ?""",
        (limit,),
    ).fetchall()
    return [PendingPush(int(r[0]), r[1], r[2], int(r[3]), r[4], r[5], r[6], r[7]) for r in rows]


def mark_push(
    conn: Connection, ticket_id: int, kind: str, state: str, now: float, attempt: bool = True
) -> None:
    conn.execute(
        """UPDATE queue_pushes SET state = ?, attempts = attempts + ?,
               sent_at = CASE WHEN ? = 'sent' THEN ? ELSE sent_at END
           WHERE ticket_id = ? AND kind = ?""",
        (state, int(attempt), state, now, ticket_id, kind),
    )


def push_states(conn: Connection) -> dict[str, int]:
    return {
        r[0]: int(r[1])
        for r in conn.execute("SELECT state, count(*) FROM queue_pushes GROUP BY state")
    }


# -- residents (the link a LINE ticket needs) ---------------------------------------------------


def resident_id_of(conn: Connection, line_user_id: str) -> int | None:
    row = conn.execute(
        "SELECT id FROM residents WHERE line_user_id = ?", (line_user_id,)
    ).fetchone()
    return int(row[0]) if row else None


def booked_slot(
    conn: Connection, resident_id: int | None, service: str, now: float
) -> float | None:
    """The start (Unix time) of the resident's active booking for SERVICE nearest NOW, from the
    reservations table when this store has it; None without a booking."""
    if resident_id is None:
        return None
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'reservation_bookings'"
    ).fetchone()
    if exists is None:
        return None
    row = conn.execute(
        """SELECT slot_at FROM reservation_bookings
           WHERE resident_id = ? AND service = ? AND state = 'active'
           ORDER BY abs(slot_at - ?) LIMIT 1""",
        (resident_id, service, now),
    ).fetchone()
    return float(row[0]) if row else None

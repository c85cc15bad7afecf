"""Deliveries, their batches and recipients: every query of the delivery service and sender.

Times are Unix seconds. A batch moves pending -> in_flight (recorded, with its retry key
already stored, BEFORE its first request) -> sent | failed | needs_attention, or
pending -> cancelled. See docs/delivery.md.
"""

from __future__ import annotations

import json
import math
import uuid
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pyroaring import BitMap

from kairand.segments.compiler import CompiledSegment
from kairand.store.database import Connection

BATCH_SIZE = 500

COLUMNS = (
    "id, title, confidentiality, messages, segment, notification_disabled, urgent, scheduled_at,"
    " status, status_reason, author, approver, reject_comment, created_at, updated_at,"
    " submitted_at, approved_at, started_at, finished_at, recipient_count, sent_count,"
    " failed_count, quota_confirmed, send_date"
)


@dataclass(frozen=True)
class DeliveryRow:
    id: int
    title: str
    confidentiality: int
    messages: list[Any]
    """Text messages are strings; images, stickers and cards their JSON objects."""
    segment: dict[str, Any]
    notification_disabled: bool
    urgent: bool
    scheduled_at: int | None
    status: str
    status_reason: str | None
    author: str
    approver: str | None
    reject_comment: str | None
    created_at: int
    updated_at: int
    submitted_at: int | None
    approved_at: int | None
    started_at: int | None
    finished_at: int | None
    recipient_count: int | None
    sent_count: int
    failed_count: int
    quota_confirmed: bool
    send_date: str | None


def _row(r: tuple[Any, ...]) -> DeliveryRow:
    return DeliveryRow(
        r[0],
        r[1],
        r[2],
        json.loads(r[3]),
        json.loads(r[4]),
        bool(r[5]),
        bool(r[6]),
        r[7],
        r[8],
        r[9],
        r[10],
        r[11],
        r[12],
        r[13],
        r[14],
        r[15],
        r[16],
        r[17],
        r[18],
        r[19],
        r[20],
        r[21],
        bool(r[22]),
        r[23],
    )


@dataclass(frozen=True)
class BatchTotals:
    total: int = 0
    pending: int = 0
    in_flight: int = 0
    sent: int = 0
    failed: int = 0
    needs_attention: int = 0
    cancelled: int = 0
    split: int = 0
    """Batches LINE refused for a recipient and that were replaced by their parts (not in
    `total`: their recipients are counted in the parts)."""


# -- deliveries -------------------------------------------------------------------------------


def insert(
    conn: Connection,
    *,
    title: str,
    confidentiality: int,
    messages: list[Any],
    segment_json: str,
    notification_disabled: bool,
    urgent: bool,
    scheduled_at: int | None,
    author: str,
    now: int,
) -> int:
    cur = conn.execute(
        "INSERT INTO deliveries (title, confidentiality, messages, segment, notification_disabled,"
        " urgent, scheduled_at, status, author, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, 'draft', ?, ?, ?)",
        (
            title,
            confidentiality,
            json.dumps(messages, ensure_ascii=False),
            segment_json,
            int(notification_disabled),
            int(urgent),
            scheduled_at,
            author,
            now,
            now,
        ),
    )
    return int(cur.lastrowid or 0)


def update_content(
    conn: Connection,
    delivery_id: int,
    *,
    title: str,
    confidentiality: int,
    messages: list[Any],
    segment_json: str,
    notification_disabled: bool,
    urgent: bool,
    scheduled_at: int | None,
    now: int,
) -> bool:
    cur = conn.execute(
        "UPDATE deliveries SET title = ?, confidentiality = ?, messages = ?, segment = ?,"
        " notification_disabled = ?, urgent = ?, scheduled_at = ?, updated_at = ?"
        " WHERE id = ? AND status = 'draft'",
        (
            title,
            confidentiality,
            json.dumps(messages, ensure_ascii=False),
            segment_json,
            int(notification_disabled),
            int(urgent),
            scheduled_at,
            now,
            delivery_id,
        ),
    )
    return cur.rowcount == 1


def get(conn: Connection, delivery_id: int) -> DeliveryRow | None:
    row = conn.execute(f"SELECT {COLUMNS} FROM deliveries WHERE id = ?", (delivery_id,)).fetchone()
    return _row(row) if row else None


def list_rows(
    conn: Connection, status: str | None = None, limit: int = 50, offset: int = 0
) -> list[DeliveryRow]:
    if status is None:
        rows = conn.execute(
            f"SELECT {COLUMNS} FROM deliveries ORDER BY id DESC LIMIT ? OFFSET ?", (limit, offset)
        )
    else:
        rows = conn.execute(
            f"SELECT {COLUMNS} FROM deliveries WHERE status = ? ORDER BY id DESC LIMIT ? OFFSET ?",
            (status, limit, offset),
        )
    return [_row(r) for r in rows]


def set_status(
    conn: Connection,
    delivery_id: int,
    expected: Iterable[str],
    status: str,
    now: int,
    **fields: Any,
) -> bool:
    """Compare-and-set: move to STATUS only from one of EXPECTED; also set FIELDS (column
    names from a fixed caller list, never user input). Returns whether the row moved."""
    allowed = {
        "status_reason",
        "approver",
        "reject_comment",
        "submitted_at",
        "approved_at",
        "started_at",
        "finished_at",
        "recipient_count",
        "quota_confirmed",
        "send_date",
    }
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"not a settable delivery field: {sorted(unknown)}")
    expected = list(expected)
    sets = ", ".join(["status = ?", "updated_at = ?", *(f"{k} = ?" for k in fields)])
    marks = ", ".join("?" for _ in expected)
    cur = conn.execute(
        f"UPDATE deliveries SET {sets} WHERE id = ? AND status IN ({marks})",
        (status, now, *fields.values(), delivery_id, *expected),
    )
    return cur.rowcount == 1


def status_of(conn: Connection, delivery_id: int) -> str | None:
    row = conn.execute("SELECT status FROM deliveries WHERE id = ?", (delivery_id,)).fetchone()
    return str(row[0]) if row else None


def next_due(conn: Connection, now: int) -> DeliveryRow | None:
    """The delivery the sender should work on now: urgent first, then one already sending
    (resume), then by approval time."""
    row = conn.execute(
        f"SELECT {COLUMNS} FROM deliveries"
        " WHERE status = 'sending'"
        " OR (status IN ('approved', 'scheduled') AND coalesce(scheduled_at, 0) <= ?)"
        " ORDER BY urgent DESC, status = 'sending' DESC, coalesce(approved_at, 0), id LIMIT 1",
        (now,),
    ).fetchone()
    return _row(row) if row else None


def urgent_due(conn: Connection, now: int, other_than: int) -> bool:
    row = conn.execute(
        "SELECT 1 FROM deliveries WHERE urgent = 1 AND id != ? AND (status = 'sending'"
        " OR (status IN ('approved', 'scheduled') AND coalesce(scheduled_at, 0) <= ?)) LIMIT 1",
        (other_than, now),
    ).fetchone()
    return row is not None


# -- freezing the recipients ------------------------------------------------------------------


FIRST_CHUNK_BATCHES = 8
"""Batches frozen with the delivery's start (4,000 recipients): the first requests go out
after a short transaction, and the rest is frozen while they are sent."""
CHUNK_BATCHES = 20
"""Batches per later freezing transaction (10,000 recipients: 20-40 ms of the writer, so a
webhook's ack never waits long behind one). The sender keeps about a chunk frozen ahead of its
claims (0.1 s of sending at 200 requests/s), spreading the chunks over the sending."""


def freeze(
    conn: Connection,
    delivery_id: int,
    compiled: CompiledSegment,
    new_key: Callable[[], str],
) -> tuple[int, int]:
    """Snapshot the segment into batches of <= 500 with their retry keys, all at once (the
    caller's transaction). Returns (recipients, batches)."""
    ids = segment_ids(conn, compiled)
    recipients, batches, _ = freeze_start(conn, delivery_id, ids, new_key, None)
    return recipients, batches


Ids = memoryview | BitMap
"""Resident ids of a recipient snapshot, ascending: from the SQL, a view of an array('q') (8
bytes an id; taking the next chunk, a slice, never copies what is left: 1M recipients, 8 MB
once); from the audience index, its compressed bitmap (sliced by position just as well, a
fraction of the memory)."""


def segment_ids(conn: Connection, compiled: CompiledSegment) -> array[int]:
    """The segment's residents' ids in this transaction's snapshot, in order (the SQL way of
    kairand.store.segments.select_ids)."""
    rows = conn.execute(f"{compiled.sql} ORDER BY id", compiled.params)
    return array("q", (row[0] for row in rows))


def freeze_start(
    conn: Connection,
    delivery_id: int,
    ids: array[int] | BitMap,
    new_key: Callable[[], str],
    first_batches: int | None,
) -> tuple[int, int, Ids]:
    """Freeze a snapshot of the segment (IDS: its residents' ids in ascending order, read in
    the caller's transaction): the first FIRST_BATCHES batches (all when None) now, with their
    retry keys. Returns (recipients, batches, the ids still to freeze with `freeze_more`); the
    delivery's `freeze_cursor` is the last frozen id while some are left."""
    limit = len(ids) if first_batches is None else first_batches * BATCH_SIZE
    view: Ids = memoryview(ids) if isinstance(ids, array) else ids  # slices copy no ids
    rest = view[limit:]
    _insert_chunk(conn, delivery_id, view[:limit], new_key, more=bool(rest))
    return len(ids), math.ceil(len(ids) / BATCH_SIZE), rest


def unfrozen_ids(conn: Connection, delivery_id: int, compiled: CompiledSegment) -> Ids:
    """After a restart: the residents the segment selects now after the delivery's cursor
    (the ids frozen before the restart are never frozen again)."""
    cursor = freeze_cursor(conn, delivery_id)
    if cursor is None:
        return memoryview(array("q"))
    rows = conn.execute(
        f"SELECT id FROM ({compiled.sql}) WHERE id > ? ORDER BY id", (*compiled.params, cursor)
    )
    return memoryview(array("q", (row[0] for row in rows)))


def freeze_more(
    conn: Connection,
    delivery_id: int,
    ids: Ids,
    new_key: Callable[[], str],
    more: bool,
) -> bool | None:
    """Freeze IDS (the next ones, in order) into new batches of a delivery being frozen; MORE:
    others follow. True when the delivery is frozen completely, False when more is to come,
    None when it is not sending (paused: nothing done; cancelled: nothing more to freeze)."""
    row = conn.execute(
        "SELECT freeze_cursor, status FROM deliveries WHERE id = ?", (delivery_id,)
    ).fetchone()
    if row is None or row[0] is None:
        return True
    if row[1] != "sending":
        return None
    cursor = int(row[0])
    start = 0
    while start < len(ids) and ids[start] <= cursor:
        start += 1  # frozen already: never twice
    _insert_chunk(conn, delivery_id, ids[start:], new_key, more)
    if more:
        return False
    # Every recipient is in a batch: the count is what was frozen, not the start's snapshot.
    conn.execute(
        "UPDATE deliveries SET recipient_count ="
        " (SELECT coalesce(sum(recipient_count), 0) FROM batches"
        "  WHERE delivery_id = ? AND state != 'split') WHERE id = ?",
        (delivery_id, delivery_id),
    )
    return True


def _insert_chunk(
    conn: Connection, delivery_id: int, ids: Ids, new_key: Callable[[], str], more: bool
) -> None:
    """IDS (ascending) into new batches after the delivery's last one, with their retry keys;
    the cursor becomes the last of IDS when MORE follow, else NULL. A resident purged since
    the snapshot is left out (the batch then holds fewer than 500)."""
    first = int(
        conn.execute(
            "SELECT coalesce(max(seq), -1) + 1 FROM batches WHERE delivery_id = ?", (delivery_id,)
        ).fetchone()[0]
    )
    count = len(ids)
    batches = math.ceil(count / BATCH_SIZE)
    conn.executemany(
        "INSERT INTO batches (delivery_id, seq, retry_key, state, recipient_count)"
        " VALUES (?, ?, ?, 'pending', ?)",
        (
            (delivery_id, first + i, new_key(), min(BATCH_SIZE, count - i * BATCH_SIZE))
            for i in range(batches)
        ),
    )
    if batches:
        conn.execute(
            "INSERT INTO batch_recipients (batch_id, resident_id)"
            " SELECT b.id, r.id FROM json_each(?) j"
            " JOIN residents r ON r.id = j.value"
            f" JOIN batches b ON b.delivery_id = ? AND b.seq = ? + j.key / {BATCH_SIZE}",
            ("[" + ",".join(map(str, ids)) + "]", delivery_id, first),
        )
    cursor = ids[-1] if more and count else None
    if more and not count:
        cursor = freeze_cursor(conn, delivery_id)
    conn.execute("UPDATE deliveries SET freeze_cursor = ? WHERE id = ?", (cursor, delivery_id))


def freeze_cursor(conn: Connection, delivery_id: int) -> int | None:
    """The resident id up to which DELIVERY_ID is frozen; None when it is frozen completely."""
    row = conn.execute(
        "SELECT freeze_cursor FROM deliveries WHERE id = ?", (delivery_id,)
    ).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def pending_batches(conn: Connection, delivery_id: int) -> int:
    """Batches frozen and not claimed yet."""
    row = conn.execute(
        "SELECT count(*) FROM batches WHERE delivery_id = ? AND state = 'pending'",
        (delivery_id,),
    ).fetchone()
    return int(row[0])


def stop_freezing(conn: Connection, delivery_id: int) -> None:
    """A cancelled delivery freezes nobody more."""
    conn.execute("UPDATE deliveries SET freeze_cursor = NULL WHERE id = ?", (delivery_id,))


# -- the sender's batch bookkeeping -----------------------------------------------------------


@dataclass(frozen=True)
class ClaimedBatch:
    id: int
    seq: int
    retry_key: str
    first_attempt_at: int
    attempts: int
    orphan: bool
    """True when the batch was already in flight (attempted by an earlier run)."""
    to: list[str]


def _recipients(conn: Connection, batch_id: int) -> list[str]:
    rows = conn.execute(
        "SELECT line_user_id FROM ("
        " SELECT br.resident_id AS rid, r.line_user_id FROM batch_recipients br"
        " JOIN residents r ON r.id = br.resident_id WHERE br.batch_id = ?"
        " UNION SELECT resident_id, line_user_id FROM batch_recipients_held WHERE batch_id = ?"
        ") ORDER BY rid",
        (batch_id, batch_id),
    )
    return [r[0] for r in rows]


def in_flight_ids(conn: Connection, delivery_id: int) -> list[int]:
    rows = conn.execute(
        "SELECT id FROM batches WHERE delivery_id = ? AND state = 'in_flight' ORDER BY seq",
        (delivery_id,),
    )
    return [int(r[0]) for r in rows]


def load_in_flight(conn: Connection, batch_ids: list[int]) -> list[ClaimedBatch]:
    """Batches attempted by an earlier run: their identical request, to retry."""
    out = []
    for batch_id in batch_ids:
        row = conn.execute(
            "SELECT seq, retry_key, first_attempt_at, attempts FROM batches"
            " WHERE id = ? AND state = 'in_flight'",
            (batch_id,),
        ).fetchone()
        if row is not None:
            out.append(
                ClaimedBatch(
                    batch_id, row[0], row[1], row[2], row[3], True, _recipients(conn, batch_id)
                )
            )
    return out


def claim_pending(
    conn: Connection,
    delivery_id: int,
    limit: int,
    now: int,
) -> list[ClaimedBatch]:
    """Mark up to LIMIT pending batches in flight (committed before any request) and return
    them with their recipients. A batch whose recipients all left is confirmed at once. A
    claim does not give way to urgent writes: it is a few milliseconds of the writer, and a
    claim cut short starved the sender under webhook load (bench/delivery.py --mixed: 0.60 of
    LINE's rate with the cut, 0.66 without, at a lower ack p99)."""
    rows = conn.execute(
        "SELECT id, seq, retry_key, attempts FROM batches"
        " WHERE delivery_id = ? AND state = 'pending' ORDER BY seq LIMIT ?",
        (delivery_id, limit),
    ).fetchall()
    out = []
    for batch_id, seq, key, attempts in rows:
        to = _recipients(conn, batch_id)
        if not to:
            conn.execute(
                "UPDATE batches SET state = 'sent', confirmed_at = ?, recipient_count = 0,"
                " error = 'no recipients left' WHERE id = ?",
                (now, batch_id),
            )
            continue
        conn.execute(
            "UPDATE batches SET state = 'in_flight', recipient_count = ?,"
            " first_attempt_at = coalesce(first_attempt_at, ?) WHERE id = ?",
            (len(to), now, batch_id),
        )
        out.append(ClaimedBatch(batch_id, seq, key, now, attempts, False, to))
    return out


@dataclass(frozen=True)
class BatchResult:
    batch_id: int
    outcome: str
    """sent | failed | needs_attention | released (never requested: back to pending) |
    cancelled (never requested, delivery cancelled)."""
    attempts: int
    recipients: int
    accepted_request_id: str | None = None
    error: str | None = None
    ambiguous: bool = False
    """Some request of this batch may have been accepted (timeout, 5xx, lost response)."""
    parts: tuple[tuple[int, ...], ...] = ()
    """outcome "split": the positions (in the batch's `to`) of each new batch."""


def split_batch(
    conn: Connection,
    batch_id: int,
    parts: tuple[tuple[int, ...], ...],
    new_key: Callable[[], str],
    now: int,
    attempts: int = 0,
    error: str | None = None,
) -> list[int]:
    """Replace an in-flight batch that LINE refused as a whole because of a recipient (400:
    nothing sent, its key not accepted) by new pending batches, one per part (positions in
    the batch's `to`, which is ordered by resident id), each with a NEW retry key stored here,
    before any request carries it. The parent becomes 'split'. Residents purged meanwhile
    (held ids) are dropped: nothing was sent to them and nothing will be. One transaction (the
    caller's): killed before it commits, the parent is retried identically and refused again.
    Returns the new batch ids."""
    row = conn.execute(
        "SELECT delivery_id FROM batches WHERE id = ? AND state = 'in_flight'", (batch_id,)
    ).fetchone()
    if row is None:
        return []
    delivery_id = int(row[0])
    ordered = conn.execute(
        "SELECT rid, held FROM ("
        " SELECT resident_id AS rid, 0 AS held FROM batch_recipients WHERE batch_id = ?"
        " UNION SELECT resident_id, 1 FROM batch_recipients_held WHERE batch_id = ?"
        ") ORDER BY rid",
        (batch_id, batch_id),
    ).fetchall()
    next_seq = int(
        conn.execute(
            "SELECT coalesce(max(seq), -1) + 1 FROM batches WHERE delivery_id = ?",
            (delivery_id,),
        ).fetchone()[0]
    )
    created = []
    for part in parts:
        residents = [
            int(ordered[i][0]) for i in part if 0 <= i < len(ordered) and not ordered[i][1]
        ]
        if not residents:
            continue
        new_id = conn.execute(
            "INSERT INTO batches (delivery_id, seq, retry_key, state, recipient_count)"
            " VALUES (?, ?, ?, 'pending', ?) RETURNING id",
            (delivery_id, next_seq, new_key(), len(residents)),
        ).fetchone()[0]
        next_seq += 1
        created.append(int(new_id))
        conn.executemany(
            "UPDATE batch_recipients SET batch_id = ? WHERE batch_id = ? AND resident_id = ?",
            [(new_id, batch_id, rid) for rid in residents],
        )
    conn.execute("DELETE FROM batch_recipients_held WHERE batch_id = ?", (batch_id,))
    conn.execute("DELETE FROM batch_recipients WHERE batch_id = ?", (batch_id,))
    conn.execute(
        "UPDATE batches SET state = 'split', recipient_count = 0, attempts = attempts + ?,"
        " last_attempt_at = ?, error = ? WHERE id = ?",
        (attempts, now, error, batch_id),
    )
    return created


def _uuid_key() -> str:
    return str(uuid.uuid4())


def record_results(
    conn: Connection,
    delivery_id: int,
    results: Iterable[BatchResult],
    now: int,
    new_key: Callable[[], str] = _uuid_key,
) -> int:
    """Store batch outcomes and the delivery's counters; returns recipients newly sent."""
    sent_total = failed_total = 0
    for res in results:
        if res.outcome == "split":
            split_batch(conn, res.batch_id, res.parts, new_key, now, res.attempts, res.error)
            continue
        if res.outcome in ("released", "cancelled"):
            # Never accepted by LINE. A batch with only definite refusals (or no request at
            # all) goes back to pending with a fresh 24 h window; one with an ambiguous attempt
            # (timeout, 5xx) stays in flight so a later retry repeats the identical request.
            if res.ambiguous:
                conn.execute(
                    "UPDATE batches SET attempts = attempts + ? WHERE id = ?",
                    (res.attempts, res.batch_id),
                )
                continue
            state = "pending" if res.outcome == "released" else "cancelled"
            conn.execute(
                "UPDATE batches SET state = ?, attempts = attempts + ?, first_attempt_at = NULL"
                " WHERE id = ? AND state = 'in_flight'",
                (state, res.attempts, res.batch_id),
            )
            continue
        cur = conn.execute(
            "UPDATE batches SET state = ?, attempts = attempts + ?, last_attempt_at = ?,"
            " confirmed_at = CASE WHEN ? = 'sent' THEN ? END, accepted_request_id = ?, error = ?"
            " WHERE id = ? AND state = 'in_flight'",
            (
                res.outcome,
                res.attempts,
                now,
                res.outcome,
                now,
                res.accepted_request_id,
                res.error,
                res.batch_id,
            ),
        )
        if cur.rowcount != 1:
            continue
        conn.execute("DELETE FROM batch_recipients_held WHERE batch_id = ?", (res.batch_id,))
        if res.outcome == "sent":
            sent_total += res.recipients
        elif res.outcome == "failed":
            failed_total += res.recipients
    if sent_total or failed_total:
        conn.execute(
            "UPDATE deliveries SET sent_count = sent_count + ?, failed_count = failed_count + ?,"
            " updated_at = ? WHERE id = ?",
            (sent_total, failed_total, now, delivery_id),
        )
    return sent_total


def cancel_pending_batches(conn: Connection, delivery_id: int) -> int:
    return conn.execute(
        "UPDATE batches SET state = 'cancelled' WHERE delivery_id = ? AND state = 'pending'",
        (delivery_id,),
    ).rowcount


def cancel_orphans(conn: Connection, delivery_id: int) -> int:
    """In-flight batches of a cancelled delivery that no running sender owns: they may or may
    not have been delivered before a crash; flagged for a person, never retried."""
    ids = in_flight_ids(conn, delivery_id)
    for batch_id in ids:
        conn.execute(
            "UPDATE batches SET state = 'needs_attention',"
            " error = 'delivery cancelled while this batch was unconfirmed' WHERE id = ?",
            (batch_id,),
        )
        conn.execute("DELETE FROM batch_recipients_held WHERE batch_id = ?", (batch_id,))
    return len(ids)


def batch_totals(conn: Connection, delivery_id: int) -> BatchTotals:
    counts = dict(
        conn.execute(
            "SELECT state, count(*) FROM batches WHERE delivery_id = ? GROUP BY state",
            (delivery_id,),
        ).fetchall()
    )
    return BatchTotals(
        total=sum(n for state, n in counts.items() if state != "split"),
        pending=counts.get("pending", 0),
        in_flight=counts.get("in_flight", 0),
        sent=counts.get("sent", 0),
        failed=counts.get("failed", 0),
        needs_attention=counts.get("needs_attention", 0),
        cancelled=counts.get("cancelled", 0),
        split=counts.get("split", 0),
    )


def batch_errors(conn: Connection, delivery_id: int, limit: int = 5) -> list[str]:
    rows = conn.execute(
        "SELECT DISTINCT error FROM batches WHERE delivery_id = ? AND error IS NOT NULL"
        " AND state IN ('failed', 'needs_attention') LIMIT ?",
        (delivery_id, limit),
    )
    return [r[0] for r in rows]

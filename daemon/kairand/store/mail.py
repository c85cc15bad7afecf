"""Mail channel storage: subscribers by address, their answers, the per-send
Message-ID rows that make each (delivery, subscriber) send happen at most once across crashes,
processed inbound mails and counters."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from kairand.conversation.survey import SurveyDefinition
from kairand.segments.channels import mail_facts
from kairand.segments.model import SegmentFilter, matches
from kairand.store import mail_programs
from kairand.store.database import Connection
from kairand.store.stats import AnswerCounts


@dataclass(frozen=True)
class MailRow:
    id: int
    stage: str
    stop_token: str
    confirm_code: str | None
    attempts: int
    question: int
    bounces: int
    answers: dict[str, tuple[str, ...]] = field(default_factory=dict)


_COLUMNS = "id, stage, stop_token, confirm_code, attempts, question, bounces"


def _answers(conn: Connection, subscriber_id: int) -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = {}
    for question, value in conn.execute(
        "SELECT question, value FROM mail_answers WHERE subscriber_id = ? ORDER BY question, value",
        (subscriber_id,),
    ):
        out.setdefault(question, [])
        if value != "":
            out[question].append(value)
    return {k: tuple(v) for k, v in out.items()}


def _row(conn: Connection, where: str, param: object) -> MailRow | None:
    found = conn.execute(
        f"SELECT {_COLUMNS} FROM mail_subscribers WHERE {where} = ?",
        (param,),
    ).fetchone()
    if found is None:
        return None
    return MailRow(
        id=int(found[0]),
        stage=str(found[1]),
        stop_token=str(found[2]),
        confirm_code=found[3],
        attempts=int(found[4]),
        question=int(found[5]),
        bounces=int(found[6]),
        answers=_answers(conn, int(found[0])),
    )


def load(conn: Connection, address: str) -> MailRow | None:
    return _row(conn, "address", address)


def address_of(conn: Connection, subscriber_id: int) -> str | None:
    found = conn.execute(
        "SELECT address FROM mail_subscribers WHERE id = ?", (subscriber_id,)
    ).fetchone()
    return str(found[0]) if found else None


def by_stop_token(conn: Connection, token: str) -> tuple[str, MailRow] | None:
    found = conn.execute(
        "SELECT address FROM mail_subscribers WHERE stop_token = ?", (token,)
    ).fetchone()
    if found is None:
        return None
    row = load(conn, str(found[0]))
    return (str(found[0]), row) if row else None


def save(
    conn: Connection,
    address: str,
    *,
    stage: str,
    stop_token: str,
    confirm_code: str | None,
    attempts: int,
    question: int,
    answers: dict[str, tuple[str, ...]],
    now: int,
) -> int:
    """Insert or update the subscriber at ADDRESS and replace its answers; returns its id."""
    conn.execute(
        "INSERT INTO mail_subscribers (address, stage, confirm_code, attempts, question,"
        " stop_token, created_at, updated_at, registered_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, CASE WHEN ? = 'registered' THEN ? END)"
        " ON CONFLICT (address) DO UPDATE SET stage = excluded.stage,"
        " confirm_code = excluded.confirm_code, attempts = excluded.attempts,"
        " question = excluded.question, updated_at = excluded.updated_at,"
        " bounces = CASE WHEN excluded.stage = 'registered' THEN 0 ELSE bounces END,"
        " registered_at = CASE WHEN excluded.stage = 'registered'"
        "   THEN coalesce(registered_at, excluded.updated_at) ELSE registered_at END",
        (address, stage, confirm_code, attempts, question, stop_token, now, now, stage, now),
    )
    subscriber_id = int(
        conn.execute("SELECT id FROM mail_subscribers WHERE address = ?", (address,)).fetchone()[0]
    )
    conn.execute("DELETE FROM mail_answers WHERE subscriber_id = ?", (subscriber_id,))
    rows = [
        (subscriber_id, question_code, value)
        for question_code, values in answers.items()
        # An answered-but-skipped question is kept as one empty value, so it is not asked again.
        for value in (values or ("",))
    ]
    conn.executemany(
        "INSERT INTO mail_answers (subscriber_id, question, value) VALUES (?, ?, ?)", rows
    )
    return subscriber_id


def delete(conn: Connection, address: str) -> dict[str, int] | None:
    """Delete the subscriber at ADDRESS and its answers; kinds and counts deleted, or None."""
    found = conn.execute("SELECT id FROM mail_subscribers WHERE address = ?", (address,)).fetchone()
    if found is None:
        return None
    answers = int(
        conn.execute(
            "SELECT count(*) FROM mail_answers WHERE subscriber_id = ? AND value != ''",
            (found[0],),
        ).fetchone()[0]
    )
    conn.execute("DELETE FROM mail_subscribers WHERE id = ?", (found[0],))
    return {"mail_subscriber": 1, "answers": answers}


def recipients(conn: Connection) -> list[tuple[int, dict[str, tuple[str, ...]]]]:
    """Registered subscribers (not bounced): internal id and answers, for audience matching."""
    out: dict[int, dict[str, list[str]]] = {}
    for subscriber_id, question, value in conn.execute(
        "SELECT s.id, a.question, a.value FROM mail_subscribers s"
        " LEFT JOIN mail_answers a ON a.subscriber_id = s.id"
        " WHERE s.stage = 'registered' ORDER BY s.id, a.question, a.value"
    ):
        answers = out.setdefault(int(subscriber_id), {})
        if question is not None:
            values = answers.setdefault(str(question), [])
            if value != "":
                values.append(str(value))
    return [(i, {k: tuple(v) for k, v in a.items()}) for i, a in out.items()]


def answer_counts(conn: Connection, year_questions: frozenset[str]) -> AnswerCounts:
    """The city survey's answers of registered mail subscribers, counted as
    kairand.store.stats.answer_counts counts LINE residents' (a skipped question, stored as an
    empty value, is not an answer; a year is grouped by decade). Counts only."""
    registered = int(
        conn.execute("SELECT count(*) FROM mail_subscribers WHERE stage = 'registered'").fetchone()[
            0
        ]
    )
    answered: dict[str, int] = {}
    values: dict[str, dict[str, int]] = {}
    for question, value, n in conn.execute(
        "SELECT a.question, a.value, count(DISTINCT a.subscriber_id) FROM mail_answers a"
        " JOIN mail_subscribers s ON s.id = a.subscriber_id"
        " WHERE s.stage = 'registered' AND a.value != '' GROUP BY a.question, a.value"
    ):
        key = str(value)
        if question in year_questions:
            if not key[:4].isdigit():
                continue
            key = f"{int(key[:4]) // 10 * 10}s"
        bucket = values.setdefault(str(question), {})
        bucket[key] = bucket.get(key, 0) + int(n)
    for question, n in conn.execute(
        "SELECT a.question, count(DISTINCT a.subscriber_id) FROM mail_answers a"
        " JOIN mail_subscribers s ON s.id = a.subscriber_id"
        " WHERE s.stage = 'registered' AND a.value != '' GROUP BY a.question"
    ):
        answered[str(question)] = int(n)
    return AnswerCounts(registered, answered, values)


def stage_counts(conn: Connection) -> dict[str, int]:
    return {
        str(stage): int(n)
        for stage, n in conn.execute("SELECT stage, count(*) FROM mail_subscribers GROUP BY stage")
    }


# Inbound mails already processed (sha256 of Message-ID + Date, no address).


def seen(conn: Connection, digest: str) -> bool:
    found = conn.execute("SELECT 1 FROM mail_inbox_seen WHERE digest = ?", (digest,)).fetchone()
    return found is not None


def mark_seen(conn: Connection, digest: str, now: int) -> None:
    conn.execute("INSERT OR IGNORE INTO mail_inbox_seen (digest, at) VALUES (?, ?)", (digest, now))


# Sends: one row per (delivery, subscriber), written BEFORE the relay is contacted.


def claim_send(
    conn: Connection, delivery_id: int, subscriber_id: int, message_id: str, now: int
) -> tuple[str, str]:
    """(state, message_id) of the send: a new row in state 'pending' with MESSAGE_ID, or the
    existing row. Only a caller that gets back 'pending' with its own MESSAGE_ID (or 'retry')
    may contact the relay."""
    found = conn.execute(
        "SELECT state, message_id FROM mail_sends WHERE delivery_id = ? AND subscriber_id = ?",
        (delivery_id, subscriber_id),
    ).fetchone()
    if found is not None:
        state, stored = str(found[0]), str(found[1])
        if state == "retry":
            conn.execute(
                "UPDATE mail_sends SET state = 'pending'"
                " WHERE delivery_id = ? AND subscriber_id = ?",
                (delivery_id, subscriber_id),
            )
        return state, stored
    conn.execute(
        "INSERT INTO mail_sends (delivery_id, subscriber_id, message_id, state, stored_at)"
        " VALUES (?, ?, ?, 'pending', ?)",
        (delivery_id, subscriber_id, message_id, now),
    )
    return "pending", message_id


def finish_send(
    conn: Connection, delivery_id: int, subscriber_id: int, state: str, now: int
) -> None:
    conn.execute(
        "UPDATE mail_sends SET state = ?, finished_at = ?"
        " WHERE delivery_id = ? AND subscriber_id = ?",
        (state, now, delivery_id, subscriber_id),
    )


def recover_pending(conn: Connection, now: int) -> int:
    """At start-up: sends left 'pending' by a crash may have reached the relay. They become
    'unconfirmed' (flagged for a person), never resent automatically."""
    cursor = conn.execute(
        "UPDATE mail_sends SET state = 'unconfirmed', finished_at = ? WHERE state = 'pending'",
        (now,),
    )
    return int(cursor.rowcount)


def send_states(conn: Connection, delivery_id: int | None = None) -> dict[str, int]:
    where, params = (
        ("WHERE delivery_id = ?", (delivery_id,)) if delivery_id is not None else ("", ())
    )
    return {
        str(state): int(n)
        for state, n in conn.execute(
            f"SELECT state, count(*) FROM mail_sends {where} GROUP BY state",
            params,
        )
    }


def send_by_message_id(conn: Connection, message_id: str) -> tuple[int, int] | None:
    found = conn.execute(
        "SELECT delivery_id, subscriber_id FROM mail_sends WHERE message_id = ?", (message_id,)
    ).fetchone()
    return (int(found[0]), int(found[1])) if found else None


# Bounces and counters.


def record_bounce(conn: Connection, address: str, threshold: int, now: int) -> bool | None:
    """Count a permanent failure for ADDRESS; True when it reached THRESHOLD and deliveries to
    it stop (stage 'bounced'); None when the address is not a subscriber."""
    found = conn.execute(
        "SELECT id, bounces FROM mail_subscribers WHERE address = ?", (address,)
    ).fetchone()
    if found is None:
        return None
    bounces = int(found[1]) + 1
    stopped = bounces >= threshold
    conn.execute(
        "UPDATE mail_subscribers SET bounces = ?, updated_at = ?,"
        " stage = CASE WHEN ? THEN 'bounced' ELSE stage END WHERE id = ?",
        (bounces, now, stopped, found[0]),
    )
    return stopped


def bump(conn: Connection, name: str, by: int = 1) -> None:
    conn.execute(
        "INSERT INTO mail_counters (name, value) VALUES (?, ?)"
        " ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
        (name, by),
    )


def counters(conn: Connection) -> dict[str, int]:
    return {str(k): int(v) for k, v in conn.execute("SELECT name, value FROM mail_counters")}


def created_before(conn: Connection, boundary: int) -> list[str]:
    """Addresses of subscribers whose registration began before BOUNDARY (annual expiry)."""
    return [
        str(r[0])
        for r in conn.execute(
            "SELECT address FROM mail_subscribers WHERE created_at < ? ORDER BY id", (boundary,)
        )
    ]


def registered_for_notice(conn: Connection, before: int, cycle: str) -> list[int]:
    """Ids of registered subscribers whose registration began before BEFORE and who have no
    notice for CYCLE yet (or one to retry): the city's March notice by mail."""
    return [
        int(r[0])
        for r in conn.execute(
            "SELECT s.id FROM mail_subscribers s WHERE s.stage = 'registered'"
            " AND s.created_at < ? AND NOT EXISTS (SELECT 1 FROM mail_notices n"
            "   WHERE n.subscriber_id = s.id AND n.cycle = ? AND n.state != 'retry')"
            " ORDER BY s.id",
            (before, cycle),
        )
    ]


# Deliveries (the channel abstraction): a delivery's mail recipients are frozen with its LINE
# batches; the mail worker sends to each of them once (mail_sends).


def matching(
    conn: Connection, segment: SegmentFilter, on: dt.date, survey: SurveyDefinition | None
) -> list[int]:
    """Registered (not bounced) subscribers SEGMENT selects on ON, by internal id: for a
    program other than the default, the program's registered mail members (migration 20)."""
    if segment.program != "city":
        return mail_programs.matching(conn, segment, on)
    return [
        subscriber_id
        for subscriber_id, answers in recipients(conn)
        if matches(segment, mail_facts(answers, survey), on)
    ]


def count_matching(
    conn: Connection, segment: SegmentFilter, on: dt.date, survey: SurveyDefinition | None
) -> int:
    return len(matching(conn, segment, on, survey))


def freeze_recipients(
    conn: Connection,
    delivery_id: int,
    segment: SegmentFilter,
    on: dt.date,
    survey: SurveyDefinition | None,
    now: int,
) -> int:
    """Snapshot the subscribers SEGMENT selects as DELIVERY_ID's mail recipients (in the
    caller's transaction, the one that freezes the LINE batches). Returns how many."""
    ids = matching(conn, segment, on, survey)
    conn.executemany(
        "INSERT OR IGNORE INTO mail_recipients (delivery_id, subscriber_id, frozen_at)"
        " VALUES (?, ?, ?)",
        ((delivery_id, i, now) for i in ids),
    )
    return len(ids)


def next_work(conn: Connection, frozen_after: int, limit: int) -> tuple[int, list[int]] | None:
    """The most urgent delivery with mail recipients not yet handed to the relay (no send row,
    or a send row in 'retry'), frozen after FROZEN_AFTER, not cancelled: (delivery, up to
    LIMIT subscriber ids)."""
    found = conn.execute(
        "SELECT r.delivery_id FROM mail_recipients r JOIN deliveries d ON d.id = r.delivery_id"
        " LEFT JOIN mail_sends s"
        "   ON s.delivery_id = r.delivery_id AND s.subscriber_id = r.subscriber_id"
        " WHERE (s.state IS NULL OR s.state = 'retry') AND r.frozen_at > ?"
        "   AND d.status != 'cancelled'"
        " ORDER BY d.urgent DESC, r.delivery_id LIMIT 1",
        (frozen_after,),
    ).fetchone()
    if found is None:
        return None
    delivery_id = int(found[0])
    ids = [
        int(r[0])
        for r in conn.execute(
            "SELECT r.subscriber_id FROM mail_recipients r LEFT JOIN mail_sends s"
            "   ON s.delivery_id = r.delivery_id AND s.subscriber_id = r.subscriber_id"
            " WHERE r.delivery_id = ? AND (s.state IS NULL OR s.state = 'retry')"
            " ORDER BY r.subscriber_id LIMIT ?",
            (delivery_id, limit),
        )
    ]
    return delivery_id, ids


@dataclass(frozen=True)
class DeliveryMail:
    """A delivery's mail channel in counts (never an address)."""

    recipients: int = 0
    sent: int = 0
    failed: int = 0
    unconfirmed: int = 0

    @property
    def waiting(self) -> int:
        return self.recipients - self.sent - self.failed - self.unconfirmed


def delivery_mail(conn: Connection, delivery_id: int) -> DeliveryMail:
    recipients_n = int(
        conn.execute(
            "SELECT count(*) FROM mail_recipients WHERE delivery_id = ?", (delivery_id,)
        ).fetchone()[0]
    )
    if recipients_n == 0:
        return DeliveryMail()
    states = send_states(conn, delivery_id)
    return DeliveryMail(
        recipients=recipients_n,
        sent=states.get("sent", 0),
        failed=states.get("failed", 0),
        unconfirmed=states.get("unconfirmed", 0),
    )


# Notices to program members (migration 21): one row per (subscriber, cycle), written BEFORE
# the relay is contacted, as for an alert's send.


def claim_notice(
    conn: Connection, subscriber_id: int, cycle: str, message_id: str, now: int, max_attempts: int
) -> tuple[str, str]:
    """(state, message_id) of the notice: a new row in state 'pending' with MESSAGE_ID, or the
    existing row. A row in 'retry' becomes 'pending' again with its stored Message-ID (one more
    attempt), or 'failed' once it has had MAX_ATTEMPTS. Only a caller that gets back 'pending'
    (its own MESSAGE_ID, or a retry's) may contact the relay."""
    found = conn.execute(
        "SELECT state, message_id, attempts FROM mail_notices"
        " WHERE subscriber_id = ? AND cycle = ?",
        (subscriber_id, cycle),
    ).fetchone()
    if found is None:
        conn.execute(
            "INSERT INTO mail_notices (subscriber_id, cycle, message_id, state, attempts,"
            " stored_at) VALUES (?, ?, ?, 'pending', 1, ?)",
            (subscriber_id, cycle, message_id, now),
        )
        return "pending", message_id
    state, stored, attempts = str(found[0]), str(found[1]), int(found[2])
    if state != "retry":
        return state, stored
    state = "pending" if attempts < max_attempts else "failed"
    conn.execute(
        "UPDATE mail_notices SET state = ?, attempts = attempts + (? = 'pending'),"
        " finished_at = CASE WHEN ? = 'failed' THEN ? END"
        " WHERE subscriber_id = ? AND cycle = ?",
        (state, state, state, now, subscriber_id, cycle),
    )
    return state, stored


def finish_notice(conn: Connection, subscriber_id: int, cycle: str, state: str, now: int) -> None:
    conn.execute(
        "UPDATE mail_notices SET state = ?, finished_at = ? WHERE subscriber_id = ? AND cycle = ?",
        (state, now, subscriber_id, cycle),
    )


def recover_pending_notices(conn: Connection, now: int) -> int:
    """At start-up: notices left 'pending' by a crash become 'unconfirmed' (never resent)."""
    cursor = conn.execute(
        "UPDATE mail_notices SET state = 'unconfirmed', finished_at = ? WHERE state = 'pending'",
        (now,),
    )
    return int(cursor.rowcount)


def notice_states(conn: Connection, cycle: str | None = None) -> dict[str, int]:
    where, params = ("WHERE cycle = ?", (cycle,)) if cycle is not None else ("", ())
    return {
        str(state): int(n)
        for state, n in conn.execute(
            f"SELECT state, count(*) FROM mail_notices {where} GROUP BY state", params
        )
    }

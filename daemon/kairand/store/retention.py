"""Retention queries: rule versions, resident facts for rule evaluation, answer expiry, and
the annual re-registration notices."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from kairand.records import ResidentFacts
from kairand.store.database import Connection

LAST_RUN_KEY = "retention.last_run_at"
LAST_RESULT_KEY = "retention.last_result"


# -- rule versions -----------------------------------------------------------------------


class RulesDocument(Protocol):
    """What the store needs of a rules object (kairand.retention.rules.RetentionRules)."""

    def model_dump_json(self) -> str: ...


def current_rules(conn: Connection) -> tuple[int, int, str] | None:
    """(version, created_at, rules as JSON) of the newest version, or None if none was ever
    saved; `kairand.retention.rules.from_stored` parses it."""
    row = conn.execute(
        "SELECT version, created_at, rules FROM retention_rule_versions"
        " ORDER BY version DESC LIMIT 1"
    ).fetchone()
    if row is None:
        return None
    return int(row[0]), int(row[1]), str(row[2])


def save_rules(conn: Connection, rules: RulesDocument, created_by: str, now: int) -> int:
    row = conn.execute("SELECT coalesce(max(version), 0) FROM retention_rule_versions").fetchone()
    version = int(row[0]) + 1
    conn.execute(
        "INSERT INTO retention_rule_versions (version, rules, created_at, created_by)"
        " VALUES (?, ?, ?, ?)",
        (version, rules.model_dump_json(), now, created_by),
    )
    return version


# -- facts -------------------------------------------------------------------------------


# First answer time per question for one page of residents (see resident_facts).
FIRST_ANSWERS_SQL = (
    "SELECT resident_id, question, min(answered_at) FROM answers"
    " WHERE resident_id BETWEEN ? AND ? AND +question IN ({marks})"
    " GROUP BY resident_id, question"
)


def resident_facts(
    conn: Connection, questions: Sequence[str] = (), after_id: int | None = None, limit: int = 0
) -> list[ResidentFacts]:
    """Facts for one page of residents, in id order: those with id > AFTER_ID (all if None),
    at most LIMIT of them (no limit if 0); FIRST_ANSWER_AT only for QUESTIONS (those with a
    rule). Callers walk the table page by page (keyset pagination on the primary key), so a
    run's memory does not grow with the number of residents."""
    rows = conn.execute(
        "SELECT id, followed_at, registered_at, last_interaction_at, deliveries_stopped"
        " FROM residents WHERE id > ? ORDER BY id LIMIT ?",
        (after_id if after_id is not None else -(2**63), limit if limit > 0 else -1),
    ).fetchall()
    if not rows:
        return []
    first: dict[int, dict[str, int]] = {}
    if questions:
        marks = ",".join("?" * len(questions))
        # The answers' primary key starts with resident_id: the page's id range is a range
        # of it. The unary + keeps the planner off the (question, ...) indexes, which would
        # scan every answer to the question for each page (quadratic over a whole run).
        for resident_id, question, answered_at in conn.execute(
            FIRST_ANSWERS_SQL.format(marks=marks), (rows[0][0], rows[-1][0], *questions)
        ):
            first.setdefault(resident_id, {})[question] = int(answered_at)
    return [
        ResidentFacts(
            resident_id=row[0],
            followed_at=row[1],
            registered_at=row[2],
            last_interaction_at=row[3],
            deliveries_stopped=bool(row[4]),
            first_answer_at=first.get(row[0], {}),
        )
        for row in rows
    ]


def line_user_id_of(conn: Connection, resident_id: int) -> str | None:
    row = conn.execute("SELECT line_user_id FROM residents WHERE id = ?", (resident_id,)).fetchone()
    return str(row[0]) if row else None


def delete_answers(
    conn: Connection, resident_id: int, question: str, before: int | None = None
) -> int:
    """Delete one resident's answers to QUESTION (only those given before BEFORE, if set)."""
    if before is None:
        cursor = conn.execute(
            "DELETE FROM answers WHERE resident_id = ? AND question = ?", (resident_id, question)
        )
    else:
        cursor = conn.execute(
            "DELETE FROM answers WHERE resident_id = ? AND question = ? AND answered_at < ?",
            (resident_id, question, before),
        )
    return int(cursor.rowcount)


# -- re-registration notices -------------------------------------------------------------


def notices_recorded(
    conn: Connection, first_id: int | None = None, last_id: int | None = None
) -> set[tuple[int, str]]:
    """(resident, cycle) pairs with a notice sent, pending or given up: never planned again.
    Only for residents FIRST_ID..LAST_ID (inclusive) when given: one page of residents."""
    low = first_id if first_id is not None else -(2**63)
    high = last_id if last_id is not None else 2**63 - 1
    return {
        (int(r), str(c))
        for r, c in conn.execute(
            "SELECT resident_id, cycle FROM retention_notices WHERE resident_id BETWEEN ? AND ?",
            (low, high),
        )
    }


def pending_notices(conn: Connection, cycles: Sequence[str]) -> list[tuple[int, str, str]]:
    """(resident, cycle, retry key) of notices reserved but not confirmed, for live cycles."""
    if not cycles:
        return []
    marks = ",".join("?" * len(cycles))
    rows = conn.execute(
        "SELECT resident_id, cycle, retry_key FROM retention_notices"
        f" WHERE state = 'pending' AND cycle IN ({marks}) ORDER BY resident_id",
        tuple(cycles),
    ).fetchall()
    return [(int(r), str(c), str(k)) for r, c, k in rows]


def reserve_notice(
    conn: Connection, resident_id: int, cycle: str, retry_key: str, now: int
) -> bool:
    """Store the retry key before the push; False if a notice for the cycle already exists."""
    cursor = conn.execute(
        "INSERT INTO retention_notices (resident_id, cycle, retry_key, created_at)"
        " SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM residents WHERE id = ?)"
        " ON CONFLICT (resident_id, cycle) DO NOTHING",
        (resident_id, cycle, retry_key, now, resident_id),
    )
    return cursor.rowcount == 1


def notice_target(conn: Connection, resident_id: int) -> str | None:
    """The LINE user id to push to, if the resident still exists and receives deliveries."""
    row = conn.execute(
        "SELECT line_user_id FROM residents WHERE id = ? AND deliveries_stopped = 0",
        (resident_id,),
    ).fetchone()
    return str(row[0]) if row else None


def member_target(conn: Connection, resident_id: int) -> str | None:
    """The LINE user id to push a program's own notice to, if the resident still exists.
    Stopping the city information does not stop a program (its deliveries and alerts still
    reach its members), so it does not stop the program's notices either."""
    row = conn.execute("SELECT line_user_id FROM residents WHERE id = ?", (resident_id,)).fetchone()
    return str(row[0]) if row else None


def mark_notice(conn: Connection, resident_id: int, cycle: str, state: str, now: int) -> None:
    conn.execute(
        "UPDATE retention_notices SET state = ?, attempts = attempts + 1,"
        " sent_at = CASE WHEN ? = 'sent' THEN ? ELSE sent_at END"
        " WHERE resident_id = ? AND cycle = ?",
        (state, state, now, resident_id, cycle),
    )


def count_attempt(conn: Connection, resident_id: int, cycle: str) -> int:
    conn.execute(
        "UPDATE retention_notices SET attempts = attempts + 1 WHERE resident_id = ? AND cycle = ?",
        (resident_id, cycle),
    )
    row = conn.execute(
        "SELECT attempts FROM retention_notices WHERE resident_id = ? AND cycle = ?",
        (resident_id, cycle),
    ).fetchone()
    return int(row[0]) if row else 0


def notice_counts(conn: Connection) -> dict[tuple[str, str], int]:
    """(cycle, state) -> count, for status displays."""
    return {
        (str(c), str(s)): int(n)
        for c, s, n in conn.execute(
            "SELECT cycle, state, count(*) FROM retention_notices GROUP BY cycle, state"
        )
    }

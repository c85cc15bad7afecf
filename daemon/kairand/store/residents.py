"""Residents and their answers: the conversation's store effects, and the purge's deletions."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from kairand.conversation.machine import ResidentState
from kairand.store.database import Connection


def load(conn: Connection, line_user_id: str) -> tuple[int, ResidentState] | None:
    """The resident's id and conversation state, or None when there is no record."""
    row = conn.execute(
        "SELECT id, consent_version, registered_at, deliveries_stopped, conversation,"
        " survey_version FROM residents WHERE line_user_id = ?",
        (line_user_id,),
    ).fetchone()
    if row is None:
        return None
    resident_id, consent_version, registered_at, stopped, conversation, survey_version = row
    answers: dict[str, list[str]] = {}
    for question, value in conn.execute(
        "SELECT question, value FROM answers WHERE resident_id = ? ORDER BY question, value",
        (resident_id,),
    ):
        answers.setdefault(question, []).append(value)
    try:
        state = json.loads(conversation)
    except ValueError:
        state = {}
    return int(resident_id), ResidentState(
        consent_version=consent_version,
        registered=registered_at is not None,
        deliveries_stopped=bool(stopped),
        conversation=state if isinstance(state, dict) else {},
        answers={q: tuple(v) for q, v in answers.items()},
        survey_version=survey_version,
    )


def start(conn: Connection, line_user_id: str, now: int) -> int:
    """Create the resident or reset an existing record to a fresh one (no answers, no consent).
    A new record is one statement (every follow of a new friend); only a reset also clears
    the answers."""
    cursor = conn.execute(
        "INSERT INTO residents (line_user_id, followed_at, last_interaction_at)"
        " VALUES (?, ?, ?) ON CONFLICT (line_user_id) DO NOTHING",
        (line_user_id, now, now),
    )
    if cursor.rowcount == 1 and cursor.lastrowid is not None:
        return int(cursor.lastrowid)  # a new id: no answers can refer to it
    row = conn.execute(
        "UPDATE residents SET followed_at = ?,"
        " consent_version = NULL, consented_at = NULL, survey_version = NULL,"
        " conversation = '{}', registered_at = NULL, deliveries_stopped = 0,"
        " display_name = NULL, last_interaction_at = ?"
        " WHERE line_user_id = ? RETURNING id",
        (now, now, line_user_id),
    ).fetchone()
    resident_id = int(row[0])
    conn.execute("DELETE FROM answers WHERE resident_id = ?", (resident_id,))
    return resident_id


def set_consent(conn: Connection, resident_id: int, version: int, now: int) -> None:
    conn.execute(
        "UPDATE residents SET consent_version = ?, consented_at = ? WHERE id = ?",
        (version, now, resident_id),
    )


def set_conversation(
    conn: Connection, resident_id: int, state: Mapping[str, Any], survey_version: int, now: int
) -> None:
    conn.execute(
        "UPDATE residents SET conversation = ?, survey_version = ?, last_interaction_at = ?"
        " WHERE id = ?",
        (
            json.dumps(state, ensure_ascii=False, separators=(",", ":")),
            survey_version,
            now,
            resident_id,
        ),
    )


def touch(conn: Connection, resident_id: int, now: int, shown_version: int | None = None) -> None:
    """Record an interaction; SHOWN_VERSION: the survey version of buttons just shown."""
    if shown_version is None:
        conn.execute(
            "UPDATE residents SET last_interaction_at = ? WHERE id = ?", (now, resident_id)
        )
    else:
        conn.execute(
            "UPDATE residents SET last_interaction_at = ?, survey_version = ? WHERE id = ?",
            (now, shown_version, resident_id),
        )


def replace_answer(
    conn: Connection,
    resident_id: int,
    question: str,
    values: tuple[tuple[str, int | None], ...],
    now: int,
) -> None:
    conn.execute(
        "DELETE FROM answers WHERE resident_id = ? AND question = ?", (resident_id, question)
    )
    conn.executemany(
        "INSERT INTO answers (resident_id, question, value, number, answered_at)"
        " VALUES (?, ?, ?, ?, ?)",
        [(resident_id, question, value, number, now) for value, number in values],
    )


def mark_registered(conn: Connection, resident_id: int, now: int) -> None:
    conn.execute(
        "UPDATE residents SET registered_at = coalesce(registered_at, ?) WHERE id = ?",
        (now, resident_id),
    )


def set_deliveries_stopped(conn: Connection, resident_id: int, stopped: bool) -> None:
    conn.execute(
        "UPDATE residents SET deliveries_stopped = ? WHERE id = ?", (int(stopped), resident_id)
    )


def set_display_name(conn: Connection, line_user_id: str, display_name: str | None) -> None:
    conn.execute(
        "UPDATE residents SET display_name = ? WHERE line_user_id = ?",
        (display_name, line_user_id),
    )


def delete(conn: Connection, line_user_id: str) -> dict[str, int] | None:
    """Delete the resident (answers and batch recipients cascade); counts of what went, or None."""
    row = conn.execute(
        "SELECT id FROM residents WHERE line_user_id = ?", (line_user_id,)
    ).fetchone()
    if row is None:
        return None
    resident_id = int(row[0])
    # `= +?`: the same index lookups, but the plan does not depend on the value, so SQLite
    # keeps the prepared statements. With `= ?` and ANALYZE statistics (sqlite_stat4) it
    # re-prepares each one on every new id, compiling the answers' facet triggers again
    # each time: most of the cost of a purge on an analyzed store (the annual-expiry run
    # purges thousands in a row).
    answers = conn.execute(
        "SELECT count(*) FROM answers WHERE resident_id = +?", (resident_id,)
    ).fetchone()[0]
    unsent = conn.execute(
        "SELECT count(*) FROM batch_recipients r JOIN batches b ON b.id = r.batch_id"
        " WHERE r.resident_id = +? AND b.state != 'sent'",
        (resident_id,),
    ).fetchone()[0]
    batch_rows = conn.execute(
        "SELECT count(*) FROM batch_recipients WHERE resident_id = +?", (resident_id,)
    ).fetchone()[0]
    # Explicit deletes (not only ON DELETE CASCADE) so a missing foreign_keys pragma can
    # never leave answers behind.
    conn.execute("DELETE FROM answers WHERE resident_id = +?", (resident_id,))
    conn.execute("DELETE FROM batch_recipients WHERE resident_id = +?", (resident_id,))
    programs = conn.execute(
        "DELETE FROM program_members WHERE resident_id = +?", (resident_id,)
    ).rowcount
    conn.execute("DELETE FROM residents WHERE id = ?", (resident_id,))
    return {
        "resident": 1,
        "answers": int(answers),
        "program_memberships": int(programs),
        "unsent_batch_entries": int(unsent),
        "batch_entries": int(batch_rows),
    }


def count(conn: Connection, registered_only: bool = False) -> int:
    where = " WHERE registered_at IS NOT NULL" if registered_only else ""
    return int(conn.execute("SELECT count(*) FROM residents" + where).fetchone()[0])


def answers_of(conn: Connection, line_user_id: str) -> dict[str, list[tuple[str, int | None]]]:
    """Answers of one resident (tests and the data-subject export)."""
    result: dict[str, list[tuple[str, int | None]]] = {}
    for question, value, number in conn.execute(
        "SELECT a.question, a.value, a.number FROM answers a JOIN residents r"
        " ON r.id = a.resident_id WHERE r.line_user_id = ? ORDER BY a.question, a.value",
        (line_user_id,),
    ):
        result.setdefault(question, []).append((value, number))
    return result


def flags_of(conn: Connection, line_user_id: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT consent_version, registered_at, deliveries_stopped, display_name"
        " FROM residents WHERE line_user_id = ?",
        (line_user_id,),
    ).fetchone()
    if row is None:
        return None
    return {
        "consent_version": row[0],
        "registered": row[1] is not None,
        "deliveries_stopped": bool(row[2]),
        "display_name": row[3],
    }

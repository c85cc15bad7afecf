"""Mail subscribers in programs: memberships, dialogue state and program answers of
mail subscribers (migration 20), and the members a program segment selects. Internal ids only;
the address is read only where a receipt needs its HMAC (annual expiry)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kairand.segments.channels import program_facts
from kairand.segments.model import SegmentFilter, matches
from kairand.store.database import Connection


@dataclass(frozen=True)
class MailMember:
    consent_version: int
    registered: bool
    conversation: dict[str, Any]
    answers: dict[str, tuple[str, ...]] = field(default_factory=dict)


def _answers(conn: Connection, subscriber_id: int, program: str) -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = {}
    for question, value in conn.execute(
        "SELECT question, value FROM mail_program_answers"
        " WHERE subscriber_id = ? AND program = ? ORDER BY question, value",
        (subscriber_id, program),
    ):
        values = out.setdefault(str(question), [])
        if value != "":
            values.append(str(value))
    return {k: tuple(v) for k, v in out.items()}


def memberships(conn: Connection, subscriber_id: int) -> dict[str, MailMember]:
    rows = conn.execute(
        "SELECT program, consent_version, registered_at, conversation"
        " FROM mail_program_members WHERE subscriber_id = ?",
        (subscriber_id,),
    ).fetchall()
    return {
        str(r[0]): MailMember(
            int(r[1]), r[2] is not None, json.loads(r[3]), _answers(conn, subscriber_id, str(r[0]))
        )
        for r in rows
    }


def set_state(conn: Connection, subscriber_id: int, program: str, state: dict[str, Any]) -> None:
    """Store the dialogue state (a row with consent version 0 until the person agrees)."""
    conn.execute(
        "INSERT INTO mail_program_members (subscriber_id, program, conversation) VALUES (?, ?, ?)"
        " ON CONFLICT (subscriber_id, program) DO UPDATE SET conversation = excluded.conversation",
        (subscriber_id, program, json.dumps(state, ensure_ascii=False, separators=(",", ":"))),
    )


def join(conn: Connection, subscriber_id: int, program: str, version: int, now: int) -> None:
    conn.execute(
        "INSERT INTO mail_program_members (subscriber_id, program, consent_version, consented_at)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (subscriber_id, program) DO UPDATE SET"
        " consent_version = excluded.consent_version, consented_at = excluded.consented_at",
        (subscriber_id, program, version, now),
    )


def set_answer(
    conn: Connection, subscriber_id: int, program: str, question: str, values: Sequence[str]
) -> None:
    """Replace the answer to QUESTION (no values: 回答しない, kept as one empty value)."""
    conn.execute(
        "DELETE FROM mail_program_answers WHERE subscriber_id = ? AND program = ? AND question = ?",
        (subscriber_id, program, question),
    )
    conn.executemany(
        "INSERT INTO mail_program_answers (subscriber_id, program, question, value)"
        " VALUES (?, ?, ?, ?)",
        [(subscriber_id, program, question, v) for v in (tuple(values) or ("",))],
    )


def mark_registered(conn: Connection, subscriber_id: int, program: str, now: int) -> None:
    conn.execute(
        "UPDATE mail_program_members SET registered_at = coalesce(registered_at, ?)"
        " WHERE subscriber_id = ? AND program = ?",
        (now, subscriber_id, program),
    )


def leave(conn: Connection, subscriber_id: int, program: str) -> dict[str, int]:
    """Delete the membership and the program's answers (the mail service stays)."""
    answers = int(
        conn.execute(
            "DELETE FROM mail_program_answers WHERE subscriber_id = ? AND program = ?"
            " AND value != ''",
            (subscriber_id, program),
        ).rowcount
    )
    conn.execute(
        "DELETE FROM mail_program_answers WHERE subscriber_id = ? AND program = ?",
        (subscriber_id, program),
    )
    removed = int(
        conn.execute(
            "DELETE FROM mail_program_members WHERE subscriber_id = ? AND program = ?",
            (subscriber_id, program),
        ).rowcount
    )
    return {"membership": removed, "answers": answers}


def consented_before(
    conn: Connection, program: str, boundary: int, limit: int
) -> list[tuple[int, str]]:
    """(subscriber id, address) of members of PROGRAM who agreed before BOUNDARY (annual
    expiry; the address only for the receipt's HMAC)."""
    return [
        (int(r[0]), str(r[1]))
        for r in conn.execute(
            "SELECT m.subscriber_id, s.address FROM mail_program_members m"
            " JOIN mail_subscribers s ON s.id = m.subscriber_id"
            " WHERE m.program = ? AND coalesce(m.consented_at, 0) < ?"
            " ORDER BY m.subscriber_id LIMIT ?",
            (program, boundary, limit),
        )
    ]


def _definition(conn: Connection, program: str) -> dict[str, Any] | None:
    found = conn.execute("SELECT definition FROM programs WHERE code = ?", (program,)).fetchone()
    if found is None:
        return None
    loaded = json.loads(found[0]) if isinstance(found[0], str) else found[0]
    return loaded if isinstance(loaded, dict) else None


def recipients(conn: Connection, program: str) -> list[tuple[int, dict[str, tuple[str, ...]]]]:
    """Registered members of PROGRAM who agreed to its current purpose notice and whose mail
    registration is active (not bounced): id and program answers."""
    definition = _definition(conn, program)
    if definition is None:
        return []
    version = int(definition.get("consent_version", 1))
    out: dict[int, dict[str, list[str]]] = {}
    for subscriber_id, question, value in conn.execute(
        "SELECT m.subscriber_id, a.question, a.value FROM mail_program_members m"
        " JOIN mail_subscribers s ON s.id = m.subscriber_id"
        " LEFT JOIN mail_program_answers a"
        "   ON a.subscriber_id = m.subscriber_id AND a.program = m.program"
        " WHERE m.program = ? AND m.registered_at IS NOT NULL AND m.consent_version >= ?"
        "   AND s.stage = 'registered'"
        " ORDER BY m.subscriber_id, a.question, a.value",
        (program, version),
    ):
        answers = out.setdefault(int(subscriber_id), {})
        if question is not None:
            values = answers.setdefault(str(question), [])
            if value != "":
                values.append(str(value))
    return [(i, {k: tuple(v) for k, v in a.items()}) for i, a in out.items()]


def matching(conn: Connection, segment: SegmentFilter, on: dt.date) -> list[int]:
    """Mail members of the (non-default) program SEGMENT names that it selects on ON."""
    definition = _definition(conn, segment.program) or {}
    years = {
        str(q.get("code"))
        for q in definition.get("questions", ())
        if isinstance(q, dict) and q.get("kind") in ("year", "year_month")
    }
    return [
        subscriber_id
        for subscriber_id, answers in recipients(conn, segment.program)
        if matches(segment, program_facts(answers, years, (segment.program,)), on)
    ]


def member_counts(conn: Connection, program: str) -> int:
    """Registered mail members of PROGRAM who agreed to its current purpose notice (a count
    for staff, never an address); members suspended by a raised consent version are not in
    it until they agree again, as for LINE (kairand.store.programs.member_counts)."""
    version = int((_definition(conn, program) or {}).get("consent_version", 1))
    return int(
        conn.execute(
            "SELECT count(*) FROM mail_program_members"
            " WHERE program = ? AND registered_at IS NOT NULL AND consent_version >= ?",
            (program, version),
        ).fetchone()[0]
    )


def answer_counts(conn: Connection, program: str, question: str) -> dict[str, int]:
    """Registered mail members of PROGRAM per option of QUESTION, counted like
    `member_counts` (aggregate only; kairand.store.programs.answer_counts for LINE)."""
    version = int((_definition(conn, program) or {}).get("consent_version", 1))
    rows = conn.execute(
        "SELECT a.value, count(*) FROM mail_program_answers a JOIN mail_program_members m"
        " ON m.subscriber_id = a.subscriber_id AND m.program = a.program"
        " WHERE a.program = ? AND a.question = ? AND a.value != ''"
        "   AND m.registered_at IS NOT NULL AND m.consent_version >= ?"
        " GROUP BY a.value",
        (program, question, version),
    )
    return {str(v): int(n) for v, n in rows}


RECONSENT_STATE = '{"step":"consent"}'
"""The dialogue state of a suspended mail member: its next reply answers the new notice."""


def suspend_outdated(conn: Connection, program: str, version: int) -> int:
    """In the transaction that raises PROGRAM's consent version to VERSION: registered mail
    members who agreed only to an older notice receive nothing more until they agree again
    (recipients() already requires the current version) and their dialogue waits for the
    answer to the new notice (1: agree and resume, 2: leave); their answers are kept and they
    stay marked registered, so agreeing restores the registration as it was. How many."""
    return int(
        conn.execute(
            "UPDATE mail_program_members SET conversation = ?"
            " WHERE program = ? AND consent_version < ? AND registered_at IS NOT NULL",
            (RECONSENT_STATE, program, version),
        ).rowcount
    )


def members_to_reconsent(conn: Connection, program: str, version: int, cycle: str) -> list[int]:
    """Subscriber ids of registered members of PROGRAM suspended for a notice older than
    VERSION, still waiting to answer it, with an active mail registration, who have no notice
    for CYCLE yet or one to retry."""
    return [
        int(r[0])
        for r in conn.execute(
            "SELECT m.subscriber_id FROM mail_program_members m"
            " JOIN mail_subscribers s ON s.id = m.subscriber_id"
            " WHERE m.program = ? AND m.consent_version < ? AND m.registered_at IS NOT NULL"
            "   AND json_extract(m.conversation, '$.step') = 'consent'"
            "   AND s.stage = 'registered'"
            "   AND NOT EXISTS (SELECT 1 FROM mail_notices n WHERE n.subscriber_id ="
            "     m.subscriber_id AND n.cycle = ? AND n.state != 'retry')"
            " ORDER BY m.subscriber_id",
            (program, version, cycle),
        )
    ]


def members_for_notice(conn: Connection, program: str, before: int, cycle: str) -> list[int]:
    """Subscriber ids of registered members of PROGRAM who agreed before BEFORE (their
    registration ends at the coming boundary), with an active mail registration, who have no
    annual notice for CYCLE yet or one to retry."""
    return [
        int(r[0])
        for r in conn.execute(
            "SELECT m.subscriber_id FROM mail_program_members m"
            " JOIN mail_subscribers s ON s.id = m.subscriber_id"
            " WHERE m.program = ? AND m.registered_at IS NOT NULL"
            "   AND coalesce(m.consented_at, 0) < ? AND s.stage = 'registered'"
            "   AND NOT EXISTS (SELECT 1 FROM mail_notices n WHERE n.subscriber_id ="
            "     m.subscriber_id AND n.cycle = ? AND n.state != 'retry')"
            " ORDER BY m.subscriber_id",
            (program, before, cycle),
        )
    ]

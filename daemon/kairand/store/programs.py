"""Programs, members, school districts, institutions, alert templates and alerts: every query
of kairand.programs (see migration 0010 for the tables)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from kairand.store.database import Connection


@dataclass(frozen=True)
class ProgramRow:
    code: str
    name: str
    is_default: bool
    definition: dict[str, Any]
    active: bool


def _program(r: tuple[Any, ...]) -> ProgramRow:
    return ProgramRow(str(r[0]), str(r[1]), bool(r[2]), json.loads(r[3]), bool(r[4]))


def list_programs(conn: Connection) -> list[ProgramRow]:
    rows = conn.execute(
        "SELECT code, name, is_default, definition, active FROM programs"
        " ORDER BY is_default DESC, code"
    )
    return [_program(r) for r in rows]


def get_program(conn: Connection, code: str) -> ProgramRow | None:
    row = conn.execute(
        "SELECT code, name, is_default, definition, active FROM programs WHERE code = ?", (code,)
    ).fetchone()
    return _program(row) if row else None


def put_program(conn: Connection, code: str, name: str, definition_json: str, now: int) -> bool:
    """Create or update a non-default program; True when created."""
    exists = get_program(conn, code)
    if exists is None:
        conn.execute(
            "INSERT INTO programs (code, name, is_default, definition, created_at, updated_at)"
            " VALUES (?, ?, 0, ?, ?, ?)",
            (code, name, definition_json, now, now),
        )
        return True
    conn.execute(
        "UPDATE programs SET name = ?, definition = ?, updated_at = ? WHERE code = ?"
        " AND is_default = 0",
        (name, definition_json, now, code),
    )
    return False


# -- members ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    consent_version: int
    consented_at: int
    registered_at: int | None
    conversation: dict[str, Any]


def member(conn: Connection, program: str, resident_id: int) -> Member | None:
    row = conn.execute(
        "SELECT consent_version, consented_at, registered_at, conversation FROM program_members"
        " WHERE program = ? AND resident_id = ?",
        (program, resident_id),
    ).fetchone()
    if row is None:
        return None
    return Member(int(row[0]), int(row[1]), row[2], json.loads(row[3]))


def memberships(conn: Connection, resident_id: int) -> dict[str, Member]:
    rows = conn.execute(
        "SELECT program, consent_version, consented_at, registered_at, conversation"
        " FROM program_members WHERE resident_id = ?",
        (resident_id,),
    )
    return {str(r[0]): Member(int(r[1]), int(r[2]), r[3], json.loads(r[4])) for r in rows}


def join(conn: Connection, program: str, resident_id: int, consent_version: int, now: int) -> None:
    conn.execute(
        "INSERT INTO program_members (program, resident_id, consent_version, consented_at)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (program, resident_id) DO UPDATE SET"
        " consent_version = excluded.consent_version, consented_at = excluded.consented_at",
        (program, resident_id, consent_version, now),
    )


def set_member_conversation(
    conn: Connection, program: str, resident_id: int, state: dict[str, Any]
) -> None:
    conn.execute(
        "UPDATE program_members SET conversation = ? WHERE program = ? AND resident_id = ?",
        (json.dumps(state, ensure_ascii=False, separators=(",", ":")), program, resident_id),
    )


def mark_member_registered(conn: Connection, program: str, resident_id: int, now: int) -> None:
    conn.execute(
        "UPDATE program_members SET registered_at = coalesce(registered_at, ?)"
        " WHERE program = ? AND resident_id = ?",
        (now, program, resident_id),
    )


def remove_member(
    conn: Connection, program: str, resident_id: int, questions: Sequence[str]
) -> dict[str, int]:
    """Delete the membership and the resident's answers to the program's QUESTIONS."""
    answers = 0
    for question in questions:
        answers += int(
            conn.execute(
                "DELETE FROM answers WHERE resident_id = ? AND question = ?",
                (resident_id, question),
            ).rowcount
        )
    removed = int(
        conn.execute(
            "DELETE FROM program_members WHERE program = ? AND resident_id = ?",
            (program, resident_id),
        ).rowcount
    )
    return {"membership": removed, "answers": answers}


RECONSENT_STATE = '{"step":"reconsent"}'


def suspend_outdated_members(conn: Connection, program: str, version: int) -> int:
    """Registered members who agreed only to a purpose notice older than VERSION receive
    nothing more until they agree again: their registration mark is cleared (the one
    condition every delivery plan uses), their answers are kept, and their dialogue waits for
    the new consent (kairand.programs.dialogue, step "reconsent"). How many were suspended."""
    return int(
        conn.execute(
            "UPDATE program_members SET registered_at = NULL, conversation = ?"
            " WHERE program = ? AND consent_version < ? AND registered_at IS NOT NULL",
            (RECONSENT_STATE, program, version),
        ).rowcount
    )


def members_to_reconsent(
    conn: Connection, program: str, version: int, cycle: str
) -> list[tuple[int, str]]:
    """(resident id, LINE user id) of members suspended for a notice older than VERSION who
    have no re-consent prompt recorded for CYCLE."""
    rows = conn.execute(
        "SELECT m.resident_id, r.line_user_id FROM program_members m"
        " JOIN residents r ON r.id = m.resident_id"
        " WHERE m.program = ? AND m.consent_version < ? AND m.registered_at IS NULL"
        " AND json_extract(m.conversation, '$.step') = 'reconsent'"
        " AND NOT EXISTS (SELECT 1 FROM retention_notices n"
        "   WHERE n.resident_id = m.resident_id AND n.cycle = ?)"
        " ORDER BY m.resident_id",
        (program, version, cycle),
    )
    return [(int(a), str(b)) for a, b in rows]


def members_consented_before(
    conn: Connection, program: str, before: int, limit: int
) -> list[tuple[int, str]]:
    """(resident id, LINE user id) of members who consented before BEFORE (one page)."""
    rows = conn.execute(
        "SELECT m.resident_id, r.line_user_id FROM program_members m"
        " JOIN residents r ON r.id = m.resident_id"
        " WHERE m.program = ? AND m.consented_at < ? ORDER BY m.resident_id LIMIT ?",
        (program, before, limit),
    )
    return [(int(a), str(b)) for a, b in rows]


def registered_members_for_notice(
    conn: Connection, program: str, before: int, cycle: str
) -> list[tuple[int, str]]:
    """(resident id, LINE user id) of registered members who consented before BEFORE and have
    no notice recorded for CYCLE."""
    rows = conn.execute(
        "SELECT m.resident_id, r.line_user_id FROM program_members m"
        " JOIN residents r ON r.id = m.resident_id"
        " WHERE m.program = ? AND m.registered_at IS NOT NULL AND m.consented_at < ?"
        " AND NOT EXISTS (SELECT 1 FROM retention_notices n"
        "   WHERE n.resident_id = m.resident_id AND n.cycle = ?)"
        " ORDER BY m.resident_id",
        (program, before, cycle),
    )
    return [(int(a), str(b)) for a, b in rows]


def answer_values(conn: Connection, resident_id: int, question: str) -> list[str]:
    rows = conn.execute(
        "SELECT value FROM answers WHERE resident_id = ? AND question = ? ORDER BY value",
        (resident_id, question),
    )
    return [str(r[0]) for r in rows]


def member_counts(conn: Connection, program: str) -> tuple[int, int]:
    """(registered members, members still answering)."""
    row = conn.execute(
        "SELECT count(registered_at), count(*) - count(registered_at) FROM program_members"
        " WHERE program = ?",
        (program,),
    ).fetchone()
    return int(row[0]), int(row[1])


def default_counts(conn: Connection) -> int:
    row = conn.execute(
        "SELECT count(*) FROM residents WHERE registered_at IS NOT NULL AND deliveries_stopped = 0"
    ).fetchone()
    return int(row[0])


def answer_counts(conn: Connection, program: str, question: str) -> dict[str, int]:
    """Registered members per option of QUESTION (aggregate only)."""
    rows = conn.execute(
        "SELECT a.value, count(*) FROM answers a JOIN program_members m"
        " ON m.resident_id = a.resident_id AND m.program = ? AND m.registered_at IS NOT NULL"
        " WHERE a.question = ? GROUP BY a.value",
        (program, question),
    )
    return {str(v): int(n) for v, n in rows}


# -- school districts ------------------------------------------------------------------------

DistrictTuple = tuple[str, str, str, str, str]
"""(code, name, kana, junior_high, junior_high_name)"""


def replace_districts(conn: Connection, districts: Sequence[DistrictTuple]) -> dict[str, int]:
    """Make DISTRICTS the active list, in its order; districts no longer listed are kept
    inactive (institutions and answers may still name them). Counts added/updated/retired."""
    before = {str(r[0]) for r in conn.execute("SELECT code FROM school_districts")}
    for position, (code, name, kana, jh, jh_name) in enumerate(districts):
        conn.execute(
            "INSERT INTO school_districts (code, name, kana, junior_high, junior_high_name,"
            " position, active) VALUES (?, ?, ?, ?, ?, ?, 1) ON CONFLICT (code) DO UPDATE SET"
            " name = excluded.name, kana = excluded.kana, junior_high = excluded.junior_high,"
            " junior_high_name = excluded.junior_high_name, position = excluded.position,"
            " active = 1",
            (code, name, kana, jh, jh_name, position),
        )
    listed = {d[0] for d in districts}
    retired = before - listed
    for code in retired:
        conn.execute("UPDATE school_districts SET active = 0 WHERE code = ?", (code,))
    return {
        "added": len(listed - before),
        "updated": len(listed & before),
        "retired": len(retired),
    }


def districts(conn: Connection, active_only: bool = True) -> list[DistrictTuple]:
    where = "WHERE active = 1" if active_only else ""
    rows = conn.execute(
        "SELECT code, name, kana, junior_high, junior_high_name FROM school_districts"
        f" {where} ORDER BY position, code"
    )
    return [(str(a), str(b), str(c), str(d), str(e)) for a, b, c, d, e in rows]


# -- institutions ----------------------------------------------------------------------------

InstitutionTuple = tuple[str, str, str, bool, frozenset[str]]
"""(code, name, kind, all_districts, districts)"""


def put_institution(
    conn: Connection,
    code: str,
    name: str,
    kind: str,
    all_districts: bool,
    district_codes: Iterable[str],
    now: int,
) -> None:
    conn.execute(
        "INSERT INTO institutions (code, name, kind, all_districts, created_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (code) DO UPDATE SET name = excluded.name,"
        " kind = excluded.kind, all_districts = excluded.all_districts",
        (code, name, kind, int(all_districts), now),
    )
    conn.execute("DELETE FROM institution_districts WHERE institution = ?", (code,))
    conn.executemany(
        "INSERT INTO institution_districts (institution, district) VALUES (?, ?)",
        [(code, d) for d in sorted(set(district_codes))],
    )


def unknown_districts(conn: Connection, codes: Iterable[str]) -> list[str]:
    known = {str(r[0]) for r in conn.execute("SELECT code FROM school_districts")}
    return [c for c in codes if c not in known]


def _institutions(conn: Connection, where: str, params: tuple[Any, ...]) -> list[InstitutionTuple]:
    rows = conn.execute(
        f"SELECT i.code, i.name, i.kind, i.all_districts FROM institutions i {where}"
        " ORDER BY i.code",
        params,
    ).fetchall()
    out = []
    for code, name, kind, all_d in rows:
        ds = frozenset(
            str(r[0])
            for r in conn.execute(
                "SELECT district FROM institution_districts WHERE institution = ?", (code,)
            )
        )
        out.append((str(code), str(name), str(kind), bool(all_d), ds))
    return out


def institutions(conn: Connection) -> list[InstitutionTuple]:
    return _institutions(conn, "", ())


def institution(conn: Connection, code: str) -> InstitutionTuple | None:
    found = _institutions(conn, "WHERE i.code = ?", (code,))
    return found[0] if found else None


def institutions_of(conn: Connection, username: str) -> list[InstitutionTuple]:
    return _institutions(
        conn,
        "WHERE i.code IN (SELECT institution FROM staff_institutions WHERE username = ?)",
        (username,),
    )


def assign_staff(conn: Connection, username: str, institution_code: str, head: bool) -> None:
    conn.execute(
        "INSERT INTO staff_institutions (username, institution, head) VALUES (?, ?, ?)"
        " ON CONFLICT (username, institution) DO UPDATE SET head = excluded.head",
        (username, institution_code, int(head)),
    )


def unassign_staff(conn: Connection, username: str, institution_code: str) -> bool:
    return (
        conn.execute(
            "DELETE FROM staff_institutions WHERE username = ? AND institution = ?",
            (username, institution_code),
        ).rowcount
        == 1
    )


def heads_of(conn: Connection, institution_code: str) -> list[str]:
    rows = conn.execute(
        "SELECT username FROM staff_institutions WHERE institution = ? AND head = 1"
        " ORDER BY username",
        (institution_code,),
    )
    return [str(r[0]) for r in rows]


# -- templates and alerts --------------------------------------------------------------------


@dataclass(frozen=True)
class TemplateRow:
    id: int
    program: str
    name: str
    definition: dict[str, Any]
    status: str
    created_by: str
    created_at: int
    approved_by: str | None
    approved_at: int | None
    replaces: int | None = None
    """The template this one revises (a draft until approved; approving it retires that one)."""
    retired_at: int | None = None


_TEMPLATE_COLUMNS = (
    "id, program, name, definition, status, created_by, created_at, approved_by, approved_at,"
    " replaces, retired_at"
)


def _template(r: tuple[Any, ...]) -> TemplateRow:
    return TemplateRow(
        int(r[0]), str(r[1]), str(r[2]), json.loads(r[3]), str(r[4]), str(r[5]), int(r[6]),
        r[7], r[8], r[9], r[10],
    )  # fmt: skip


def insert_template(
    conn: Connection,
    program: str,
    name: str,
    definition_json: str,
    by: str,
    now: int,
    replaces: int | None = None,
) -> int:
    cursor = conn.execute(
        "INSERT INTO alert_templates"
        " (program, name, definition, status, created_by, created_at, replaces)"
        " VALUES (?, ?, ?, 'draft', ?, ?, ?)",
        (program, name, definition_json, by, now, replaces),
    )
    return int(cursor.lastrowid or 0)


def open_revision(conn: Connection, template_id: int) -> int | None:
    """The draft revising TEMPLATE_ID, if any (there is at most one)."""
    row = conn.execute(
        "SELECT id FROM alert_templates WHERE replaces = ? AND status = 'draft'", (template_id,)
    ).fetchone()
    return int(row[0]) if row else None


def replacement_of(conn: Connection, template_id: int) -> int | None:
    """The approved revision that replaced TEMPLATE_ID (it may be retired since), if any."""
    row = conn.execute(
        "SELECT id FROM alert_templates WHERE replaces = ? AND approved_by IS NOT NULL"
        " ORDER BY id DESC LIMIT 1",
        (template_id,),
    ).fetchone()
    return int(row[0]) if row else None


def retire_template(conn: Connection, template_id: int, now: int) -> bool:
    """Withdraw a template that is not retired yet; False if there is none such."""
    return (
        conn.execute(
            "UPDATE alert_templates SET status = 'retired', retired_at = ?"
            " WHERE id = ? AND status != 'retired'",
            (now, template_id),
        ).rowcount
        == 1
    )


def template(conn: Connection, template_id: int) -> TemplateRow | None:
    row = conn.execute(
        f"SELECT {_TEMPLATE_COLUMNS} FROM alert_templates WHERE id = ?", (template_id,)
    ).fetchone()
    return _template(row) if row else None


def templates(conn: Connection, program: str | None = None) -> list[TemplateRow]:
    if program is None:
        rows = conn.execute(f"SELECT {_TEMPLATE_COLUMNS} FROM alert_templates ORDER BY id")
    else:
        rows = conn.execute(
            f"SELECT {_TEMPLATE_COLUMNS} FROM alert_templates WHERE program = ? ORDER BY id",
            (program,),
        )
    return [_template(r) for r in rows]


def set_template_status(
    conn: Connection, template_id: int, status: str, by: str | None, now: int | None
) -> bool:
    return (
        conn.execute(
            "UPDATE alert_templates SET status = ?, approved_by = coalesce(?, approved_by),"
            " approved_at = coalesce(?, approved_at) WHERE id = ?",
            (status, by, now, template_id),
        ).rowcount
        == 1
    )


@dataclass(frozen=True)
class AlertRow:
    delivery_id: int
    template_id: int
    institution: str
    districts: list[str]
    follows: int | None
    kind: str
    consent_by: str | None
    consent_at: int | None
    created_at: int


def insert_alert(
    conn: Connection,
    delivery_id: int,
    template_id: int,
    institution_code: str,
    district_codes: Sequence[str],
    follows: int | None,
    kind: str,
    consent: tuple[str, int] | None,
    now: int,
) -> None:
    conn.execute(
        "INSERT INTO alerts (delivery_id, template_id, institution, districts, follows, kind,"
        " consent_by, consent_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            delivery_id,
            template_id,
            institution_code,
            json.dumps(list(district_codes)),
            follows,
            kind,
            consent[0] if consent else None,
            consent[1] if consent else None,
            now,
        ),
    )


def alert(conn: Connection, delivery_id: int) -> AlertRow | None:
    row = conn.execute(
        "SELECT delivery_id, template_id, institution, districts, follows, kind, consent_by,"
        " consent_at, created_at FROM alerts WHERE delivery_id = ?",
        (delivery_id,),
    ).fetchone()
    if row is None:
        return None
    return AlertRow(
        int(row[0]), int(row[1]), str(row[2]), json.loads(row[3]), row[4], str(row[5]),
        row[6], row[7], int(row[8]),
    )  # fmt: skip


def recent_alerts(conn: Connection, limit: int = 20) -> list[AlertRow]:
    ids = [
        int(r[0])
        for r in conn.execute(
            "SELECT delivery_id FROM alerts ORDER BY delivery_id DESC LIMIT ?", (limit,)
        )
    ]
    return [a for a in (alert(conn, i) for i in ids) if a is not None]


# -- synthetic members (tests, benchmarks, training data; never real residents) ---------------


def insert_synthetic_members(
    conn: Connection,
    program: str,
    members: Iterable[tuple[str, Sequence[str], bool]],
    question: str,
    consent_version: int,
    now: int,
) -> int:
    """MEMBERS: (LINE user id of an existing resident, district codes, registered)."""
    ids = {str(u): int(i) for i, u in conn.execute("SELECT id, line_user_id FROM residents")}
    count = 0
    for user_id, codes, registered in members:
        rid = ids[user_id]
        conn.execute(
            "INSERT INTO program_members (program, resident_id, consent_version, consented_at,"
            " registered_at) VALUES (?, ?, ?, ?, ?)",
            (program, rid, consent_version, now, now if registered else None),
        )
        conn.executemany(
            "INSERT INTO answers (resident_id, question, value, number, answered_at)"
            " VALUES (?, ?, ?, NULL, ?)",
            [(rid, question, code, now) for code in codes],
        )
        count += 1
    return count

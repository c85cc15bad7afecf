"""Programs (subscriptions with their own notice, questions, retention and senders), school
districts, sending institutions, pre-approved alert templates and the alerts sent from them
(K1, K2, K7, K8)."""

from __future__ import annotations

from kairand.store.database import Connection

VERSION = 14
DESCRIPTION = "programs, school districts, institutions, alert templates"

DEFAULT_PROGRAM = "city"

STATEMENTS = [
    # One row per program. The default program (`is_default`) is the city information
    # service that existed before programs: its registration IS the residents row
    # (registered_at, deliveries_stopped), so every existing resident is in it unchanged.
    # Other programs keep their members in program_members. `definition` is the program's
    # own purpose notice, consent version and questions (JSON, kairand.programs.model).
    """CREATE TABLE programs (
        code TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        is_default INTEGER NOT NULL DEFAULT 0,
        definition TEXT NOT NULL DEFAULT '{}',
        active INTEGER NOT NULL DEFAULT 1,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    )""",
    """CREATE UNIQUE INDEX programs_one_default ON programs (is_default) WHERE is_default = 1""",
    # A resident's registration in a non-default program. `registered_at` is set when the
    # program's questions are answered; only registered members receive its deliveries.
    """CREATE TABLE program_members (
        program TEXT NOT NULL REFERENCES programs (code),
        resident_id INTEGER NOT NULL REFERENCES residents (id) ON DELETE CASCADE,
        consent_version INTEGER NOT NULL,
        consented_at INTEGER NOT NULL,
        registered_at INTEGER,
        conversation TEXT NOT NULL DEFAULT '{}',
        PRIMARY KEY (program, resident_id)
    ) WITHOUT ROWID""",
    """CREATE INDEX program_members_registered ON program_members
        (program, registered_at, resident_id)""",
    """CREATE INDEX program_members_by_resident ON program_members (resident_id)""",
    # School districts (学校区): elementary districts grouped under a junior-high district.
    """CREATE TABLE school_districts (
        code TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        kana TEXT NOT NULL,
        junior_high TEXT NOT NULL,
        junior_high_name TEXT NOT NULL,
        position INTEGER NOT NULL,
        active INTEGER NOT NULL DEFAULT 1
    )""",
    # Sending institutions (発信元): kind is kodomoen / kindergarten / nursery / school /
    # board / agency; `all_districts` (the board of education) covers every district.
    """CREATE TABLE institutions (
        code TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        all_districts INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL
    )""",
    """CREATE TABLE institution_districts (
        institution TEXT NOT NULL REFERENCES institutions (code) ON DELETE CASCADE,
        district TEXT NOT NULL REFERENCES school_districts (code),
        PRIMARY KEY (institution, district)
    ) WITHOUT ROWID""",
    # Staff membership in an institution; `head` (園長・校長) is notified of its alerts.
    """CREATE TABLE staff_institutions (
        username TEXT NOT NULL,
        institution TEXT NOT NULL REFERENCES institutions (code) ON DELETE CASCADE,
        head INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (username, institution)
    ) WITHOUT ROWID""",
    # Alert templates: drafted by anyone with the author or approver role, approved by an
    # approver other than their writer; only an approved template can be sent from.
    """CREATE TABLE alert_templates (
        id INTEGER PRIMARY KEY,
        program TEXT NOT NULL REFERENCES programs (code),
        name TEXT NOT NULL,
        definition TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('draft', 'approved', 'retired')),
        created_by TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        approved_by TEXT,
        approved_at INTEGER
    )""",
    # One row per alert sent from a template: which delivery, which institution, the
    # districts, and the guardian consent recorded for a field about a child (K7).
    """CREATE TABLE alerts (
        delivery_id INTEGER PRIMARY KEY REFERENCES deliveries (id),
        template_id INTEGER NOT NULL REFERENCES alert_templates (id),
        institution TEXT NOT NULL REFERENCES institutions (code),
        districts TEXT NOT NULL,
        follows INTEGER REFERENCES alerts (delivery_id),
        kind TEXT NOT NULL DEFAULT 'alert' CHECK (kind IN ('alert', 'correction', 'all_clear')),
        consent_by TEXT,
        consent_at INTEGER,
        created_at INTEGER NOT NULL
    )""",
]


def upgrade(conn: Connection) -> None:
    for statement in STATEMENTS:
        conn.execute(statement)
    conn.execute(
        "INSERT INTO programs (code, name, is_default, definition, created_at, updated_at)"
        " VALUES (?, '市政情報', 1, '{}', strftime('%s', 'now'), strftime('%s', 'now'))",
        (DEFAULT_PROGRAM,),
    )

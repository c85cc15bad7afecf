"""Mail subscribers in programs: a mail subscriber joins a program such as
子ども安全情報 as a LINE resident does (program_members), with its consent version, its own
dialogue state and its answers (the school districts, the program's further questions).

Both tables hang off mail_subscribers: stopping the mail service deletes every membership and
program answer with the address. Internal ids only, never an address.
"""

from __future__ import annotations

from kairand.store.database import Connection

VERSION = 20
DESCRIPTION = "mail channel: program memberships and program answers of mail subscribers"

STATEMENTS = [
    """CREATE TABLE mail_program_members (
        subscriber_id INTEGER NOT NULL REFERENCES mail_subscribers (id) ON DELETE CASCADE,
        program TEXT NOT NULL,
        consent_version INTEGER NOT NULL DEFAULT 0,
        consented_at INTEGER,
        registered_at INTEGER,
        conversation TEXT NOT NULL DEFAULT '{}',
        PRIMARY KEY (subscriber_id, program)
    ) WITHOUT ROWID""",
    "CREATE INDEX mail_program_members_by_program ON mail_program_members (program)",
    """CREATE TABLE mail_program_answers (
        subscriber_id INTEGER NOT NULL REFERENCES mail_subscribers (id) ON DELETE CASCADE,
        program TEXT NOT NULL,
        question TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (subscriber_id, program, question, value)
    ) WITHOUT ROWID""",
]


def upgrade(conn: Connection) -> None:
    for statement in STATEMENTS:
        conn.execute(statement)

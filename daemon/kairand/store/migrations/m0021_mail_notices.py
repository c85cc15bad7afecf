"""Notices by mail to program members (K1/K2/S16): the one re-consent mail per
member and consent version, and the one March re-registration notice per member and annual
cycle, each sent at most once like an alert (kairand.mail.sender): the Message-ID is stored
with the row in state 'pending' before the relay is contacted, and a crash that leaves it
pending makes it 'unconfirmed' (never resent).

Internal ids and cycles only, never an address; rows go with the subscriber (cascade).
"""

from __future__ import annotations

from kairand.store.database import Connection

VERSION = 21
DESCRIPTION = "mail channel: re-consent and annual notices to program members, sent once"

STATEMENTS = [
    """CREATE TABLE mail_notices (
        subscriber_id INTEGER NOT NULL REFERENCES mail_subscribers (id) ON DELETE CASCADE,
        cycle TEXT NOT NULL,
        message_id TEXT NOT NULL UNIQUE,
        state TEXT NOT NULL
            CHECK (state IN ('pending', 'sent', 'unconfirmed', 'failed', 'retry')),
        attempts INTEGER NOT NULL DEFAULT 0,
        stored_at INTEGER NOT NULL,
        finished_at INTEGER,
        PRIMARY KEY (subscriber_id, cycle)
    ) WITHOUT ROWID""",
    "CREATE INDEX mail_notices_by_state ON mail_notices (state)",
]


def upgrade(conn: Connection) -> None:
    for statement in STATEMENTS:
        conn.execute(statement)

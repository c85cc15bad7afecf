"""The mail channel (K9): subscribers reached by e-mail, their answers, one row per
(delivery, subscriber) send holding the Message-ID written before the send, and inbound mails
already processed.

Only the address and the answers are stored. `mail_sends` and `mail_inbox_seen` hold internal
ids and digests, never an address.
"""

from __future__ import annotations

from kairand.store.database import Connection

VERSION = 16
DESCRIPTION = "mail channel: subscribers, answers, sends, processed inbound mails"

STATEMENTS = [
    """CREATE TABLE mail_subscribers (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        address TEXT NOT NULL UNIQUE,
        stage TEXT NOT NULL CHECK (stage IN ('confirming', 'asking', 'registered', 'bounced')),
        confirm_code TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        question INTEGER NOT NULL DEFAULT 0,
        stop_token TEXT NOT NULL UNIQUE,
        bounces INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        registered_at INTEGER
    )""",
    """CREATE TABLE mail_answers (
        subscriber_id INTEGER NOT NULL REFERENCES mail_subscribers (id) ON DELETE CASCADE,
        question TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (subscriber_id, question, value)
    ) WITHOUT ROWID""",
    """CREATE TABLE mail_sends (
        delivery_id INTEGER NOT NULL,
        subscriber_id INTEGER NOT NULL,
        message_id TEXT NOT NULL UNIQUE,
        state TEXT NOT NULL
            CHECK (state IN ('pending', 'sent', 'unconfirmed', 'failed', 'retry')),
        stored_at INTEGER NOT NULL,
        finished_at INTEGER,
        PRIMARY KEY (delivery_id, subscriber_id)
    ) WITHOUT ROWID""",
    "CREATE INDEX mail_sends_by_state ON mail_sends (state)",
    """CREATE TABLE mail_inbox_seen (
        digest TEXT PRIMARY KEY,
        at INTEGER NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE mail_counters (
        name TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    ) WITHOUT ROWID""",
]


def upgrade(conn: Connection) -> None:
    for statement in STATEMENTS:
        conn.execute(statement)

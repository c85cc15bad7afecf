"""The mail channel inside deliveries: the mail subscribers a delivery goes to,
frozen in the same transaction as its LINE batches, so that an approved delivery reaches the
same people whatever happens to the answers afterwards. Internal ids only, never an address.
"""

from __future__ import annotations

from kairand.store.database import Connection

VERSION = 17
DESCRIPTION = "mail channel: recipients frozen per delivery"

STATEMENTS = [
    """CREATE TABLE mail_recipients (
        delivery_id INTEGER NOT NULL,
        subscriber_id INTEGER NOT NULL,
        frozen_at INTEGER NOT NULL,
        PRIMARY KEY (delivery_id, subscriber_id)
    ) WITHOUT ROWID""",
    # The mail worker looks only at recipients frozen in the last day.
    "CREATE INDEX mail_recipients_by_time ON mail_recipients (frozen_at)",
]


def upgrade(conn: Connection) -> None:
    for statement in STATEMENTS:
        conn.execute(statement)

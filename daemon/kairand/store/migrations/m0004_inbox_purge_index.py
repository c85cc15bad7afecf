"""Inbox: find one resident's events fast (purge, ordering)."""

from __future__ import annotations

from kairand.store.database import Connection

VERSION = 4
DESCRIPTION = "inbox index by LINE user id (purge removes a resident's pending events)"


def upgrade(conn: Connection) -> None:
    conn.execute("CREATE INDEX inbox_by_user ON inbox (line_user_id, event_timestamp)")

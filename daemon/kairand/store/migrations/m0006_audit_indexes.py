"""Indexes for the staff audit screen's filters (actor, action) over the audit log."""

from __future__ import annotations

from kairand.store.database import Connection

VERSION = 6
DESCRIPTION = "audit log indexes by actor and by action"


def upgrade(conn: Connection) -> None:
    conn.execute("CREATE INDEX audit_by_actor ON audit_log (actor, seq)")
    conn.execute("CREATE INDEX audit_by_action ON audit_log (action, seq)")

"""Indexes over the audit log: the staff audit screen's filters (actor, action) and the
four-eyes check (who wrote a delivery: entries by target)."""

from __future__ import annotations

from kairand.store.database import Connection

VERSION = 6
DESCRIPTION = "audit log indexes by actor, by action and by target"


def upgrade(conn: Connection) -> None:
    conn.execute("CREATE INDEX audit_by_actor ON audit_log (actor, seq)")
    conn.execute("CREATE INDEX audit_by_action ON audit_log (action, seq)")
    conn.execute("CREATE INDEX audit_by_target ON audit_log (target, action)")

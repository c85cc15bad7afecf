"""Retention rules as versioned data, and the annual re-registration notices already sent."""

from __future__ import annotations

from kairand.store.database import Connection

VERSION = 9
DESCRIPTION = "retention rule versions; annual re-registration notices"


def upgrade(conn: Connection) -> None:
    # Every edit of the retention rules is a new version (JSON, see kairand.retention.rules);
    # `created_at` is when a version takes effect for the annual boundaries.
    conn.execute(
        """CREATE TABLE retention_rule_versions (
            version INTEGER PRIMARY KEY,
            rules TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            created_by TEXT NOT NULL
        )"""
    )
    # One row per resident and annual cycle (the boundary, ISO 8601 in Japan time): the retry
    # key is stored before the push so a retry after a crash reuses it, and a row in state
    # 'sent' means the notice is never sent again. Rows go with the resident (cascade).
    conn.execute(
        """CREATE TABLE retention_notices (
            resident_id INTEGER NOT NULL REFERENCES residents (id) ON DELETE CASCADE,
            cycle TEXT NOT NULL,
            retry_key TEXT NOT NULL UNIQUE,
            state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            created_at INTEGER NOT NULL,
            sent_at INTEGER,
            PRIMARY KEY (resident_id, cycle)
        ) WITHOUT ROWID"""
    )

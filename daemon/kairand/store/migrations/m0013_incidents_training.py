"""Records the handling report needs (S19, S21): incidents and how they were reported, and
handler education. Staff user names and free text written by administrators only: never a
resident's id, name or answer (the CLI says so and the report prints what is stored)."""

from __future__ import annotations

from kairand.store.database import Connection

VERSION = 13
DESCRIPTION = "incident records and handler education records"


def upgrade(conn: Connection) -> None:
    conn.execute(
        """CREATE TABLE incidents (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('leak', 'loss', 'unauthorised_access', 'other')),
            occurred_at INTEGER NOT NULL,
            discovered_at INTEGER NOT NULL,
            summary TEXT NOT NULL,
            affected TEXT NOT NULL DEFAULT '',
            reported_to TEXT NOT NULL DEFAULT '',
            reported_at INTEGER,
            measures TEXT NOT NULL DEFAULT '',
            prevention TEXT NOT NULL DEFAULT '',
            recorded_by TEXT NOT NULL,
            recorded_at INTEGER NOT NULL
        )"""
    )
    conn.execute("CREATE INDEX incidents_by_time ON incidents (occurred_at)")
    conn.execute(
        """CREATE TABLE training_records (
            id INTEGER PRIMARY KEY,
            held_on TEXT NOT NULL,
            title TEXT NOT NULL,
            instructor TEXT NOT NULL DEFAULT '',
            attendees TEXT NOT NULL,
            recorded_by TEXT NOT NULL,
            recorded_at INTEGER NOT NULL
        )"""
    )
    conn.execute("CREATE INDEX training_by_date ON training_records (held_on)")

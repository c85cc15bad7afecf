"""Daily counters for the dashboard, and staff test recipients for テスト送信."""

from __future__ import annotations

from kairand.store.database import Connection

VERSION = 2
DESCRIPTION = "daily counters; staff test recipients and their one-time codes"


def upgrade(conn: Connection) -> None:
    # Aggregate counts per Japan-time day (follows, unfollows, webhook events, ...): no persons.
    conn.execute(
        """CREATE TABLE daily_counts (
            day TEXT NOT NULL,
            metric TEXT NOT NULL,
            count INTEGER NOT NULL,
            PRIMARY KEY (day, metric)
        ) WITHOUT ROWID"""
    )
    # A code shown in the TUI; the staff member sends it from their own LINE to the account.
    conn.execute(
        """CREATE TABLE test_recipient_codes (
            code TEXT PRIMARY KEY,
            staff_username TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL,
            claimed_at INTEGER
        )"""
    )
    conn.execute(
        """CREATE TABLE test_recipients (
            id INTEGER PRIMARY KEY,
            staff_username TEXT NOT NULL,
            line_user_id TEXT NOT NULL UNIQUE,
            created_at INTEGER NOT NULL
        )"""
    )

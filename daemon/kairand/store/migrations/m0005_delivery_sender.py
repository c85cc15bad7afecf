"""Delivery sender: batch states and confirmation time, quota confirmation, and holding the
LINE user ids of residents purged while their batch is in flight (identical retries)."""

from __future__ import annotations

from kairand.store.database import Connection

VERSION = 5
DESCRIPTION = "delivery sender: batch states, quota confirmation, in-flight holds"

STATEMENTS = [
    # Staff confirmed sending although LINE's limited monthly quota would be exceeded.
    "ALTER TABLE deliveries ADD COLUMN quota_confirmed INTEGER NOT NULL DEFAULT 0",
    # Japan-time date the segment was evaluated on (ages are computed on it).
    "ALTER TABLE deliveries ADD COLUMN send_date TEXT",
    # When LINE confirmed a batch (200, or 409 for an already accepted retry key).
    "ALTER TABLE batches ADD COLUMN confirmed_at INTEGER",
    # batches.state: pending | in_flight | sent | failed | needs_attention | cancelled.
    "CREATE INDEX batches_by_state ON batches (delivery_id, state, seq)",
    # A purge deletes the resident row, and batch_recipients cascades with it. For a batch
    # already attempted but not yet confirmed, the retry must repeat the identical request
    # (same retry key, same recipients), so the purged resident's LINE user id is held here
    # until the batch is confirmed, failed or flagged; then it is deleted. Only in-flight
    # batches hold ids: a pending batch simply loses the resident.
    """CREATE TABLE batch_recipients_held (
        batch_id INTEGER NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
        resident_id INTEGER NOT NULL,
        line_user_id TEXT NOT NULL,
        PRIMARY KEY (batch_id, resident_id)
    ) WITHOUT ROWID""",
    """CREATE TRIGGER residents_hold_in_flight BEFORE DELETE ON residents
    BEGIN
        INSERT OR IGNORE INTO batch_recipients_held (batch_id, resident_id, line_user_id)
        SELECT br.batch_id, OLD.id, OLD.line_user_id
        FROM batch_recipients br JOIN batches b ON b.id = br.batch_id
        WHERE br.resident_id = OLD.id AND b.state = 'in_flight';
    END""",
]


def upgrade(conn: Connection) -> None:
    for statement in STATEMENTS:
        conn.execute(statement)

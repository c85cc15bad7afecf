"""The inbox worker takes the oldest pending events (`WHERE state = 'pending' ORDER BY
event_timestamp, id`). The first index, (state, line_user_id, event_timestamp), finds the
pending rows but not in that order: every batch sorted the whole backlog (under 1,000 events/s
during a delivery, about a quarter of the inbox worker's time). This index hands the oldest
rows out in order (the rowid completes it)."""

from __future__ import annotations

from kairand.store.database import Connection

VERSION = 22
DESCRIPTION = "inbox index in processing order (state, event_timestamp)"


def upgrade(conn: Connection) -> None:
    conn.execute("CREATE INDEX inbox_pending_order ON inbox (state, event_timestamp)")

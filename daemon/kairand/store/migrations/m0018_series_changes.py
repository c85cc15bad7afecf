"""A change to an approved series waits for its own approval.

While a change to an active or paused series awaits approval, the series keeps sending as it
was approved; the proposed content and rule, who proposed them and when are kept here.
"""

from __future__ import annotations

from kairand.store.database import Connection

VERSION = 18
DESCRIPTION = "series: a proposed change awaiting approval"

STATEMENTS = [
    "ALTER TABLE series ADD COLUMN pending_title TEXT",
    "ALTER TABLE series ADD COLUMN pending_content TEXT",
    "ALTER TABLE series ADD COLUMN pending_rule TEXT",
    "ALTER TABLE series ADD COLUMN pending_by TEXT",
    "ALTER TABLE series ADD COLUMN pending_at INTEGER",
]


def upgrade(conn: Connection) -> None:
    for statement in STATEMENTS:
        conn.execute(statement)

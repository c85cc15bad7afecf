"""A delivery's recipients are frozen in chunks (the first request went out only
after 100k recipients were frozen in one transaction; in the mixed-load benchmark at 1M that
transaction held the store's writer, and every webhook ack behind it, for over a second).
`freeze_cursor` is the resident id up to which batches exist; NULL once every recipient is in a
batch. A restart continues from it, so no resident is frozen twice or skipped."""

from __future__ import annotations

from kairand.store.database import Connection

VERSION = 23
DESCRIPTION = "deliveries.freeze_cursor: recipients frozen in chunks"


def upgrade(conn: Connection) -> None:
    conn.execute("ALTER TABLE deliveries ADD COLUMN freeze_cursor INTEGER")

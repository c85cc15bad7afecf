"""Rich messages: uploaded images, templates (定型文) and recurring deliveries."""

from __future__ import annotations

from kairand.store.database import Connection

VERSION = 15
DESCRIPTION = "images served through the relay, templates, recurring delivery series"

STATEMENTS = [
    # An image staff uploaded (class-1 content, G3). `id` is the hex SHA-256 of `original`
    # (the bytes as served: metadata stripped); `token` is random and part of the public path,
    # so a path cannot be guessed even by someone holding the picture.
    """CREATE TABLE media (
        id TEXT PRIMARY KEY,
        token TEXT NOT NULL UNIQUE,
        content_type TEXT NOT NULL CHECK (content_type IN ('image/jpeg', 'image/png')),
        original BLOB NOT NULL,
        preview BLOB NOT NULL,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        file_name TEXT NOT NULL,
        uploaded_by TEXT NOT NULL,
        uploaded_at INTEGER NOT NULL
    )""",
    # Which deliveries use which image: an image is served only while an approved delivery
    # using it is within its serving period (kairand.store.media.servable).
    """CREATE TABLE delivery_media (
        delivery_id INTEGER NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
        media_id TEXT NOT NULL REFERENCES media (id),
        PRIMARY KEY (delivery_id, media_id)
    ) WITHOUT ROWID""",
    "CREATE INDEX delivery_media_by_media ON delivery_media (media_id)",
    # A test send (push to staff's own phones, before approval) serves the image until `until`.
    """CREATE TABLE media_grants (
        media_id TEXT NOT NULL REFERENCES media (id) ON DELETE CASCADE,
        until INTEGER NOT NULL
    )""",
    "CREATE INDEX media_grants_by_media ON media_grants (media_id, until)",
    # 定型文: saved messages staff start from (content as DeliveryContent-like JSON).
    """CREATE TABLE templates (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        content TEXT NOT NULL,
        version INTEGER NOT NULL DEFAULT 1,
        created_by TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_by TEXT NOT NULL,
        updated_at INTEGER NOT NULL,
        deleted INTEGER NOT NULL DEFAULT 0
    )""",
    # A recurring delivery, approved once as a series. `cursor` is the time (Unix seconds) of
    # the last occurrence handled; occurrences after it are due when their time has come.
    """CREATE TABLE series (
        id INTEGER PRIMARY KEY,
        title TEXT NOT NULL,
        content TEXT NOT NULL,
        rule TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN
            ('draft', 'pending_approval', 'active', 'paused', 'ended', 'cancelled')),
        status_reason TEXT,
        author TEXT NOT NULL,
        approver TEXT,
        reject_comment TEXT,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        submitted_at INTEGER,
        approved_at INTEGER,
        cursor INTEGER,
        occurrences_done INTEGER NOT NULL DEFAULT 0
    )""",
    # One row per occurrence handled, so each is created exactly once (the primary key): either
    # a delivery (frozen at its time, own audience snapshot and retry keys) or a skip.
    """CREATE TABLE series_occurrences (
        series_id INTEGER NOT NULL REFERENCES series (id) ON DELETE CASCADE,
        at INTEGER NOT NULL,
        delivery_id INTEGER REFERENCES deliveries (id),
        outcome TEXT NOT NULL CHECK (outcome IN ('created', 'skipped_late', 'skipped_paused')),
        noted_at INTEGER NOT NULL,
        PRIMARY KEY (series_id, at)
    ) WITHOUT ROWID""",
    "ALTER TABLE deliveries ADD COLUMN series_id INTEGER REFERENCES series (id)",
    "ALTER TABLE deliveries ADD COLUMN occurrence_at INTEGER",
]


def upgrade(conn: Connection) -> None:
    for statement in STATEMENTS:
        conn.execute(statement)

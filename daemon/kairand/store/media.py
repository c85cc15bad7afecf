"""Uploaded images and when they may be served. Times are Unix seconds."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from kairand.store.database import Connection


@dataclass(frozen=True)
class MediaInfo:
    id: str
    token: str
    content_type: str
    width: int
    height: int
    original_bytes: int
    preview_bytes: int
    file_name: str
    uploaded_by: str
    uploaded_at: int


_INFO = (
    "id, token, content_type, width, height, length(original), length(preview), file_name,"
    " uploaded_by, uploaded_at"
)


def insert(
    conn: Connection,
    *,
    media_id: str,
    token: str,
    content_type: str,
    original: bytes,
    preview: bytes,
    width: int,
    height: int,
    file_name: str,
    uploaded_by: str,
    now: int,
) -> MediaInfo:
    """Store an image; the same content uploaded again returns the existing row."""
    conn.execute(
        "INSERT INTO media (id, token, content_type, original, preview, width, height,"
        " file_name, uploaded_by, uploaded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (id) DO NOTHING",
        (
            media_id,
            token,
            content_type,
            original,
            preview,
            width,
            height,
            file_name,
            uploaded_by,
            now,
        ),
    )
    found = info(conn, media_id)
    assert found is not None
    return found


def info(conn: Connection, media_id: str) -> MediaInfo | None:
    row = conn.execute(f"SELECT {_INFO} FROM media WHERE id = ?", (media_id,)).fetchone()
    return MediaInfo(*row) if row else None


def tokens(conn: Connection, media_ids: Iterable[str]) -> dict[str, tuple[str, str]]:
    """media id -> (token, content type)."""
    out = {}
    for media_id in media_ids:
        row = conn.execute(
            "SELECT token, content_type FROM media WHERE id = ?", (media_id,)
        ).fetchone()
        if row:
            out[media_id] = (row[0], row[1])
    return out


def missing(conn: Connection, media_ids: Iterable[str]) -> list[str]:
    return [
        m
        for m in media_ids
        if conn.execute("SELECT 1 FROM media WHERE id = ?", (m,)).fetchone() is None
    ]


def link_delivery(conn: Connection, delivery_id: int, media_ids: Iterable[str]) -> None:
    conn.execute("DELETE FROM delivery_media WHERE delivery_id = ?", (delivery_id,))
    conn.executemany(
        "INSERT OR IGNORE INTO delivery_media (delivery_id, media_id) VALUES (?, ?)",
        ((delivery_id, m) for m in media_ids),
    )


def grant(conn: Connection, media_ids: Iterable[str], until: int) -> None:
    conn.executemany(
        "INSERT INTO media_grants (media_id, until) VALUES (?, ?)",
        ((m, until) for m in media_ids),
    )


def servable(
    conn: Connection, token: str, media_id: str, variant: str, now: int, period: int
) -> tuple[str, bytes] | None:
    """(content type, bytes) when the image may be served now: an approved delivery uses it
    (not cancelled before it started) and it finished less than PERIOD seconds ago (or is
    still to be sent), or a test send granted it. None otherwise (the caller answers 404)."""
    column = "original" if variant == "original" else "preview"
    row = conn.execute(
        f"SELECT content_type, {column} FROM media m WHERE m.token = ? AND m.id = ? AND ("
        " EXISTS (SELECT 1 FROM delivery_media dm JOIN deliveries d ON d.id = dm.delivery_id"
        "   WHERE dm.media_id = m.id AND d.approved_at IS NOT NULL"
        "   AND d.status NOT IN ('draft', 'pending_approval')"
        "   AND (d.status != 'cancelled' OR d.started_at IS NOT NULL)"
        "   AND coalesce(d.finished_at, ?) + ? > ?)"
        " OR EXISTS (SELECT 1 FROM media_grants g WHERE g.media_id = m.id AND g.until > ?))",
        (token, media_id, now, period, now, now),
    ).fetchone()
    if row is None:
        return None
    content_type = row[0] if variant == "original" else "image/jpeg"
    return content_type, bytes(row[1])


def list_recent(conn: Connection, limit: int = 50) -> list[MediaInfo]:
    rows = conn.execute(
        f"SELECT {_INFO} FROM media ORDER BY uploaded_at DESC LIMIT ?", (limit,)
    ).fetchall()
    return [MediaInfo(*r) for r in rows]


_FINISHED = "('sent', 'partially_failed', 'failed', 'cancelled', 'needs_attention')"


def purgeable(conn: Connection, now: int, period: int, limit: int = 100) -> list[MediaInfo]:
    """Images no longer needed: uploaded more than PERIOD seconds ago, used by no delivery
    still to be sent or finished less than PERIOD seconds ago, by no live test grant, by no
    series that may still send and by no template (content JSON names the image's id)."""
    rows = conn.execute(
        f"SELECT {_INFO} FROM media m WHERE m.uploaded_at + ? <= ?"
        " AND NOT EXISTS (SELECT 1 FROM delivery_media dm JOIN deliveries d"
        "   ON d.id = dm.delivery_id WHERE dm.media_id = m.id"
        f"   AND (d.status NOT IN {_FINISHED}"
        "     OR coalesce(d.finished_at, d.updated_at) + ? > ?))"
        " AND NOT EXISTS (SELECT 1 FROM media_grants g WHERE g.media_id = m.id AND g.until > ?)"
        " AND NOT EXISTS (SELECT 1 FROM series s WHERE s.status NOT IN ('ended', 'cancelled')"
        "   AND instr(s.content, m.id) > 0)"
        " AND NOT EXISTS (SELECT 1 FROM templates t WHERE t.deleted = 0"
        "   AND instr(t.content, m.id) > 0)"
        " ORDER BY m.uploaded_at LIMIT ?",
        (period, now, period, now, now, limit),
    ).fetchall()
    return [MediaInfo(*r) for r in rows]


def purge(conn: Connection, media_id: str) -> None:
    """Delete the image's bytes and its links (secure_delete zeroes the freed pages)."""
    conn.execute("DELETE FROM media_grants WHERE media_id = ?", (media_id,))
    conn.execute("DELETE FROM delivery_media WHERE media_id = ?", (media_id,))
    conn.execute("DELETE FROM media WHERE id = ?", (media_id,))

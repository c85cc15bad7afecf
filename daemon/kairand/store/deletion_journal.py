"""The store side of the deletion journal (kairand.retention.journal): where the journal lives
(beside the store file) and the queries that re-apply its deletions to a restored store."""

from __future__ import annotations

from pathlib import Path

from kairand.store.database import Connection

JOURNAL_NAME = "deletion-journal.jsonl"


def store_file(conn: Connection) -> Path | None:
    """The file behind CONN's main database (None for an in-memory store)."""
    for _seq, name, file in conn.execute("PRAGMA database_list").fetchall():
        if name == "main":
            return Path(file) if file else None
    return None  # pragma: no cover - SQLite always lists "main"


def journal_beside(database: Path) -> Path:
    return database.parent / JOURNAL_NAME


def people(conn: Connection) -> list[tuple[str, int]]:
    """Every stored LINE user id with the time it was first stored (residents, test recipients).
    Used only to recompute HMACs in memory; the ids never leave this process."""
    rows = conn.execute(
        "SELECT line_user_id, followed_at FROM residents"
        " UNION ALL SELECT line_user_id, created_at FROM test_recipients"
    ).fetchall()
    return [(str(uid), int(at)) for uid, at in rows]


def resident_since(conn: Connection, line_user_id: str) -> int | None:
    row = conn.execute(
        "SELECT followed_at FROM residents WHERE line_user_id = ?", (line_user_id,)
    ).fetchone()
    return None if row is None else int(row[0])


def test_recipient_since(conn: Connection, line_user_id: str) -> int | None:
    row = conn.execute(
        "SELECT created_at FROM test_recipients WHERE line_user_id = ?", (line_user_id,)
    ).fetchone()
    return None if row is None else int(row[0])


def delete_answers_until(conn: Connection, line_user_id: str, question: str, at: int) -> int:
    """Delete LINE_USER_ID's answers to QUESTION given at or before AT."""
    return conn.execute(
        "DELETE FROM answers WHERE question = ? AND answered_at <= ? AND resident_id ="
        " (SELECT id FROM residents WHERE line_user_id = ?)",
        (question, at, line_user_id),
    ).rowcount


def has_receipt(conn: Connection, digest: str) -> bool:
    row = conn.execute("SELECT 1 FROM deletion_receipts WHERE digest = ?", (digest,)).fetchone()
    return row is not None

"""Audit log storage: append one entry (linked to the previous) and read the chain back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kairand.evidence.audit import GENESIS, AuditEntry, StoredEntry, link
from kairand.store.database import Connection


def append(conn: Connection, entry: AuditEntry) -> StoredEntry:
    """Append ENTRY inside the caller's write transaction (so it commits with its effects)."""
    row = conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    prev_seq, prev_hash = (row[0], row[1]) if row else (0, GENESIS)
    seq = prev_seq + 1
    digest = link(prev_hash, seq, entry)
    conn.execute(
        "INSERT INTO audit_log"
        " (seq, at_ms, actor, action, target, outcome, detail, prev_hash, hash)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            seq,
            entry.at_ms,
            entry.actor,
            entry.action,
            entry.target,
            entry.outcome,
            json.dumps(entry.detail, ensure_ascii=False, sort_keys=True),
            prev_hash,
            digest,
        ),
    )
    return StoredEntry(seq, entry, prev_hash, digest)


def iter_entries(conn: Connection, after_seq: int = 0) -> Iterator[StoredEntry]:
    cursor = conn.execute(
        "SELECT seq, at_ms, actor, action, target, outcome, detail, prev_hash, hash"
        " FROM audit_log WHERE seq > ? ORDER BY seq",
        (after_seq,),
    )
    for seq, at_ms, actor, action, target, outcome, detail, prev_hash, digest in cursor:
        entry = AuditEntry(at_ms, actor, action, outcome, target, _detail(detail))
        yield StoredEntry(seq, entry, prev_hash, digest)


def head(conn: Connection) -> tuple[int, str]:
    row = conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    return (row[0], row[1]) if row else (0, GENESIS)


@dataclass(frozen=True)
class AuditFilter:
    actor: str | None = None
    action: str | None = None
    """Exact action, or a prefix when it ends in "." or "*"."""
    since_ms: int | None = None
    until_ms: int | None = None
    before_seq: int | None = None


def query(conn: Connection, where: AuditFilter, limit: int) -> list[StoredEntry]:
    """Entries matching WHERE, newest first (the staff audit screen pages with before_seq)."""
    clauses: list[str] = []
    params: list[object] = []
    if where.actor:
        clauses.append("actor = ?")
        params.append(where.actor)
    if where.action:
        if where.action.endswith(("*", ".")):
            prefix = where.action.rstrip("*")
            escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            clauses.append("action LIKE ? ESCAPE '\\'")
            params.append(escaped + "%")
        else:
            clauses.append("action = ?")
            params.append(where.action)
    if where.since_ms is not None:
        clauses.append("at_ms >= ?")
        params.append(where.since_ms)
    if where.until_ms is not None:
        clauses.append("at_ms < ?")
        params.append(where.until_ms)
    if where.before_seq is not None:
        clauses.append("seq < ?")
        params.append(where.before_seq)
    sql = (
        "SELECT seq, at_ms, actor, action, target, outcome, detail, prev_hash, hash"
        " FROM audit_log"
        + (" WHERE " + " AND ".join(clauses) if clauses else "")
        + " ORDER BY seq DESC LIMIT ?"
    )
    rows = conn.execute(sql, (*params, limit)).fetchall()
    out = []
    for seq, at_ms, actor, action, target, outcome, detail, prev_hash, digest in rows:
        entry = AuditEntry(at_ms, actor, action, outcome, target, _detail(detail))
        out.append(StoredEntry(seq, entry, prev_hash, digest))
    return out


def _detail(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        return {"_unreadable": raw[:200]}
    return value if isinstance(value, dict) else {"_value": value}


# -- signed checkpoints (kairand.audit.checkpoints signs and verifies) -------------------


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    at_ms: int
    head_hash: str
    signature: str


def add_checkpoint(conn: Connection, checkpoint: Checkpoint) -> None:
    conn.execute(
        "INSERT INTO audit_checkpoints (seq, at_ms, head_hash, signature) VALUES (?, ?, ?, ?)",
        (checkpoint.seq, checkpoint.at_ms, checkpoint.head_hash, checkpoint.signature),
    )


def checkpoints(conn: Connection) -> list[Checkpoint]:
    rows = conn.execute(
        "SELECT seq, at_ms, head_hash, signature FROM audit_checkpoints ORDER BY seq"
    ).fetchall()
    return [Checkpoint(int(s), int(a), h, sig) for s, a, h, sig in rows]


def last_checkpoint(conn: Connection) -> Checkpoint | None:
    row = conn.execute(
        "SELECT seq, at_ms, head_hash, signature FROM audit_checkpoints ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    return Checkpoint(int(row[0]), int(row[1]), row[2], row[3]) if row else None


def count_after(conn: Connection, seq: int) -> int:
    return int(conn.execute("SELECT count(*) FROM audit_log WHERE seq > ?", (seq,)).fetchone()[0])


def oldest_after(conn: Connection, seq: int) -> int | None:
    """at_ms of the first entry after SEQ."""
    row = conn.execute(
        "SELECT at_ms FROM audit_log WHERE seq > ? ORDER BY seq LIMIT 1", (seq,)
    ).fetchone()
    return int(row[0]) if row else None


def actors_for(conn: Connection, target: str, actions: tuple[str, ...]) -> set[str]:
    """Who performed ACTIONS on TARGET (e.g. who created or edited `delivery 12`)."""
    marks = ", ".join("?" for _ in actions)
    rows = conn.execute(
        f"SELECT DISTINCT actor FROM audit_log WHERE target = ? AND action IN ({marks})",
        (target, *actions),
    ).fetchall()
    return {str(r[0]) for r in rows}

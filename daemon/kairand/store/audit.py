"""Audit log storage: append one entry (linked to the previous) and read the chain back."""

from __future__ import annotations

import json
from collections.abc import Iterator

from kairand.audit.chain import GENESIS, AuditEntry, StoredEntry, link
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
        entry = AuditEntry(at_ms, actor, action, outcome, target, json.loads(detail))
        yield StoredEntry(seq, entry, prev_hash, digest)


def head(conn: Connection) -> tuple[int, str]:
    row = conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    return (row[0], row[1]) if row else (0, GENESIS)

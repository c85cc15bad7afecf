"""The hash chain (S8). Pure: canonical encoding and hashing; storage is in store/audit.py.

hash_n = sha256(prev_hash_n || canonical(entry_n)), prev_hash_1 = GENESIS. Editing, deleting or
reordering any stored entry breaks every later link, and `verify` names the first broken one.
Entries never hold LINE user ids or survey answers: actors are staff user names or system
components, targets are internal ids (delivery 12, receipt 7).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

GENESIS = "0" * 64


@dataclass(frozen=True)
class AuditEntry:
    at_ms: int
    actor: str
    action: str
    outcome: str  # "allowed" | "denied" | "ok" | "failed"
    target: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredEntry:
    seq: int
    entry: AuditEntry
    prev_hash: str
    hash: str


def canonical(seq: int, entry: AuditEntry) -> bytes:
    """Deterministic bytes for an entry, including its position (so reordering is detected)."""
    payload = {
        "seq": seq,
        "at_ms": entry.at_ms,
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "outcome": entry.outcome,
        "detail": entry.detail,
    }
    return json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def link(prev_hash: str, seq: int, entry: AuditEntry) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical(seq, entry)).hexdigest()


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    entries: int
    head_hash: str
    first_broken_seq: int | None = None
    reason: str = ""


def verify(
    stored: Iterable[StoredEntry], start_hash: str = GENESIS, start_seq: int = 0
) -> VerifyResult:
    """Walk the chain in seq order; report the first entry whose link does not hold."""
    prev_hash, expected_seq, count = start_hash, start_seq + 1, 0
    for row in stored:
        if row.seq != expected_seq:
            return VerifyResult(
                False, count, prev_hash, expected_seq, "entry missing or out of order"
            )
        if row.prev_hash != prev_hash:
            return VerifyResult(False, count, prev_hash, row.seq, "previous hash does not match")
        if link(prev_hash, row.seq, row.entry) != row.hash:
            return VerifyResult(False, count, prev_hash, row.seq, "entry was modified")
        prev_hash, expected_seq, count = row.hash, expected_seq + 1, count + 1
    return VerifyResult(True, count, prev_hash)

"""Audit entries and their hash-chain link (S8), as stored: the types the store persists and
the audit feature verifies (`kairand.audit.chain`).

hash_n = sha256(prev_hash_n || canonical(entry_n)), prev_hash_1 = GENESIS. Entries never hold
LINE user ids or survey answers: actors are staff user names or system components, targets are
internal ids (delivery 12, receipt 7).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kairand.evidence import canonical_json, sha256_hex

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
    return canonical_json(
        {
            "seq": seq,
            "at_ms": entry.at_ms,
            "actor": entry.actor,
            "action": entry.action,
            "target": entry.target,
            "outcome": entry.outcome,
            "detail": entry.detail,
        }
    )


def link(prev_hash: str, seq: int, entry: AuditEntry) -> str:
    return sha256_hex(bytes.fromhex(prev_hash) + canonical(seq, entry))

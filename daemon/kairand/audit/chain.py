"""The hash chain (S8): verification. Pure. The entry types, their canonical encoding and the
link hash are in the evidence kernel (`kairand.evidence.audit`, shared with the store, which
persists them); storage is in store/audit.py.

hash_n = sha256(prev_hash_n || canonical(entry_n)), prev_hash_1 = GENESIS. Editing, deleting or
reordering any stored entry breaks every later link, and `verify` names the first broken one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from kairand.evidence.audit import GENESIS, AuditEntry, StoredEntry, canonical, link

__all__ = ["GENESIS", "AuditEntry", "StoredEntry", "VerifyResult", "canonical", "link", "verify"]


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

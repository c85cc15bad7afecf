"""Deletion receipts as stored (S11, S13): the record type the store persists and
`kairand.retention.receipts` makes and verifies. A receipt holds an HMAC of the LINE user id,
never the id, and what was deleted as kinds and counts, never values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kairand.evidence import canonical_json


def receipt_body(at: int, reason: str, subject: str, deleted: dict[str, Any]) -> bytes:
    return canonical_json({"at": at, "reason": reason, "subject_hmac": subject, "deleted": deleted})


@dataclass(frozen=True)
class Receipt:
    at: int
    reason: str
    subject_hmac: str
    deleted: dict[str, Any]  # what was deleted: kinds and counts, never values
    digest: str
    signature: str  # base64 Ed25519 over the digest

    def body(self) -> bytes:
        return receipt_body(self.at, self.reason, self.subject_hmac, self.deleted)

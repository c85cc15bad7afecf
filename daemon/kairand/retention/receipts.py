"""Deletion receipts (S11, S13): one signed record per purge, holding an HMAC of the LINE user
id instead of the id. A resident who later asks "prove my data was deleted" gives their id;
recomputing the HMAC finds the receipt without the appliance ever keeping the id.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

REASONS = ("unfollow", "request", "annual_expiry", "retention", "contract_end")


def subject_hmac(hmac_key: bytes, line_user_id: str) -> str:
    return hmac.new(hmac_key, line_user_id.encode(), hashlib.sha256).hexdigest()


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


def receipt_body(at: int, reason: str, subject: str, deleted: dict[str, Any]) -> bytes:
    payload = {"at": at, "reason": reason, "subject_hmac": subject, "deleted": deleted}
    return json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def make_receipt(
    *,
    at: int,
    reason: str,
    line_user_id: str,
    deleted: dict[str, Any],
    hmac_key: bytes,
    signing_key: Ed25519PrivateKey,
) -> Receipt:
    if reason not in REASONS:
        raise ValueError(f"unknown deletion reason {reason!r}")
    subject = subject_hmac(hmac_key, line_user_id)
    digest = hashlib.sha256(receipt_body(at, reason, subject, deleted)).hexdigest()
    signature = base64.b64encode(signing_key.sign(bytes.fromhex(digest))).decode()
    return Receipt(at, reason, subject, deleted, digest, signature)


def verify_receipt(receipt: Receipt, public_key: Ed25519PublicKey) -> bool:
    if hashlib.sha256(receipt.body()).hexdigest() != receipt.digest:
        return False
    try:
        public_key.verify(base64.b64decode(receipt.signature), bytes.fromhex(receipt.digest))
    except (InvalidSignature, ValueError):
        return False
    return True

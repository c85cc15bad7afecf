"""Deletion receipts (S11, S13): one signed record per purge, holding an HMAC of the LINE user
id instead of the id. A resident who later asks "prove my data was deleted" gives their id;
recomputing the HMAC finds the receipt without the appliance ever keeping the id.

The record type is in the evidence kernel (`kairand.evidence.receipts`); this module holds the
rules: which reasons exist, how the subject is derived, and signing and checking a receipt.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kairand import evidence
from kairand.evidence.receipts import Receipt, receipt_body

__all__ = [
    "REASONS",
    "Receipt",
    "make_receipt",
    "receipt_body",
    "subject_hmac",
    "verify_receipt",
]

REASONS = ("unfollow", "request", "annual_expiry", "retention", "contract_end")


def subject_hmac(hmac_key: bytes, line_user_id: str) -> str:
    return hmac.new(hmac_key, line_user_id.encode(), hashlib.sha256).hexdigest()


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
    digest = evidence.sha256_hex(receipt_body(at, reason, subject, deleted))
    signature = evidence.sign_b64(signing_key, bytes.fromhex(digest))
    return Receipt(at, reason, subject, deleted, digest, signature)


def verify_receipt(receipt: Receipt, public_key: Ed25519PublicKey) -> bool:
    if evidence.sha256_hex(receipt.body()) != receipt.digest:
        return False
    try:
        digest = bytes.fromhex(receipt.digest)
    except ValueError:
        return False
    return evidence.verify_b64(public_key, receipt.signature, digest)

"""Deletion receipts (S11): signed, keyed by an HMAC of the user id, never the id itself."""

from __future__ import annotations

import dataclasses

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kairand.retention.receipts import make_receipt, subject_hmac, verify_receipt

USER = "U" + "ab" * 16


def test_receipt_signs_and_hides_the_user_id() -> None:
    """S11: the receipt verifies, finds the resident by recomputed HMAC, and holds no id."""
    key = Ed25519PrivateKey.generate()
    receipt = make_receipt(
        at=1_800_000_000,
        reason="unfollow",
        line_user_id=USER,
        deleted={"resident": 1, "answers": 5},
        hmac_key=b"k" * 32,
        signing_key=key,
    )
    assert verify_receipt(receipt, key.public_key())
    assert receipt.subject_hmac == subject_hmac(b"k" * 32, USER)
    assert USER not in repr(receipt)
    forged = dataclasses.replace(receipt, deleted={"resident": 1, "answers": 0})
    assert not verify_receipt(forged, key.public_key())
    assert not verify_receipt(receipt, Ed25519PrivateKey.generate().public_key())

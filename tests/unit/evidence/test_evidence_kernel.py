"""The evidence kernel: the bytes every signature and chain link covers must never change (a
store's existing audit chain, receipts and issued certificates must keep verifying). The golden
values below were computed by the three separate implementations the kernel replaced."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kairand import evidence
from kairand.evidence.audit import GENESIS, AuditEntry, link
from kairand.evidence.receipts import receipt_body

ENTRY = AuditEntry(
    1767225600000,
    "kairanctl:tanaka",
    "staff.put",
    "ok",
    "suzuki",
    {"roles": ["author"], "名前": "鈴木"},
)


@pytest.mark.req("S8")
def test_an_audit_link_is_what_the_chain_always_computed() -> None:
    assert link(GENESIS, 1, ENTRY) == (
        "176df6fed809a70255e8cc8e57c3adf75e2859eacacb41dde41d9048292c477a"
    )


@pytest.mark.req("S11")
def test_a_receipt_digest_is_what_receipts_always_computed() -> None:
    body = receipt_body(1767225600, "request", "ab" * 32, {"answers": 3})
    assert evidence.sha256_hex(body) == (
        "b8ecfc8c43e83cf80441ae5473d4c92e6cc9e6e223fd4f356f984d1621dd9a09"
    )


def test_canonical_json_is_sorted_compact_utf8() -> None:
    assert evidence.canonical_json({"b": 1, "a": "削除"}) == '{"a":"削除","b":1}'.encode()


def test_sign_and_verify_reject_any_change() -> None:
    key = Ed25519PrivateKey.generate()
    other = Ed25519PrivateKey.generate().public_key()
    signature = evidence.sign_b64(key, b"message")
    assert evidence.verify_b64(key.public_key(), signature, b"message")
    assert not evidence.verify_b64(key.public_key(), signature, b"messagE")
    assert not evidence.verify_b64(other, signature, b"message")
    assert not evidence.verify_b64(key.public_key(), "not base64!", b"message")
    raw = base64.b64decode(signature)
    assert evidence.verify(key.public_key(), raw, b"message")
    assert not evidence.verify(key.public_key(), raw[:-1] + bytes([raw[-1] ^ 1]), b"message")


def test_fingerprint_and_pem_round_trip() -> None:
    public = Ed25519PrivateKey.generate().public_key()
    loaded = evidence.load_public_key_pem(evidence.public_key_pem(public).encode())
    assert evidence.fingerprint(loaded) == evidence.fingerprint(public)
    assert evidence.fingerprint(public).startswith("sha256:")
    assert len(evidence.fingerprint(public)) == len("sha256:") + 64

"""The evidence kernel: canonical JSON, SHA-256 digests, key fingerprints and Ed25519
signatures, written once for everything Kairan signs or chains (the audit hash chain and its
checkpoints, deletion receipts, certificates and signed records). Pure: no I/O, no storage,
imports nothing of kairand; keys come from the caller.

The record types built on it live next to it: `evidence.audit` (audit entries and their chain
link) and `evidence.receipts` (deletion receipts). Feature packages (audit/, retention/,
reports/) add their rules on top; the store persists these types without knowing the features.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ALGORITHM = "Ed25519"


def canonical_json(payload: Any) -> bytes:
    """Deterministic UTF-8 JSON: sorted keys, no whitespace, non-ASCII kept as is. Every
    signature and chain link covers these bytes, so the encoding must never change."""
    return json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fingerprint(public_key: Ed25519PublicKey) -> str:
    """`sha256:<hex>` of the raw public key: printed on documents to name the signing key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "sha256:" + sha256_hex(raw)


def public_key_pem(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def load_public_key_pem(data: bytes) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def sign(key: Ed25519PrivateKey, message: bytes) -> bytes:
    return key.sign(message)


def verify(public_key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    """True when SIGNATURE is PUBLIC_KEY's signature over MESSAGE; never raises for a bad one."""
    try:
        public_key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


def sign_b64(key: Ed25519PrivateKey, message: bytes) -> str:
    return base64.b64encode(key.sign(message)).decode()


def verify_b64(public_key: Ed25519PublicKey, signature: str, message: bytes) -> bool:
    """Like `verify`, for a base64 signature; a malformed one is simply not valid."""
    try:
        raw = base64.b64decode(signature, validate=True)
    except ValueError:
        return False
    return verify(public_key, raw, message)


__all__ = [
    "ALGORITHM",
    "canonical_json",
    "fingerprint",
    "load_public_key_pem",
    "public_key_pem",
    "sha256_hex",
    "sign",
    "sign_b64",
    "verify",
    "verify_b64",
]

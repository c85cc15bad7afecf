"""Signed documents: a JSON form and a printable text form, both signed with the appliance's
Ed25519 key, and both verified strictly — the file must be byte for byte what was issued, so
any edit (a digit, a character of the Japanese text, even a space) fails verification.

JSON form:   {"payload": {...}, "signature": {"algorithm", "key_fingerprint", "value"}}
             rendered with sorted keys and 2-space indentation; the signature covers the
             compact canonical encoding of the payload.
Text form:   the printable body, then a signature block whose signature covers the body's
             UTF-8 bytes.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kairand import evidence
from kairand.evidence import (
    ALGORITHM,
    fingerprint,
    load_public_key_pem,
    public_key_pem,
)
from kairand.evidence import canonical_json as canonical

__all__ = [
    "ALGORITHM",
    "BEGIN",
    "END",
    "Verified",
    "canonical",
    "fingerprint",
    "load_public_key_pem",
    "public_key_pem",
    "sign_json",
    "sign_text",
    "verify_document",
]

BEGIN = "-----BEGIN KAIRAN SIGNATURE-----"
END = "-----END KAIRAN SIGNATURE-----"


def _render_json(document: dict[str, Any]) -> str:
    return json.dumps(document, ensure_ascii=False, sort_keys=True, indent=2) + "\n"


def sign_json(payload: dict[str, Any], key: Ed25519PrivateKey) -> str:
    signature = evidence.sign_b64(key, canonical(payload))
    return _render_json(
        {
            "payload": payload,
            "signature": {
                "algorithm": ALGORITHM,
                "key_fingerprint": fingerprint(key.public_key()),
                "value": signature,
            },
        }
    )


def _signature_block(body: str, key_fingerprint: str, signature: str) -> str:
    digest = evidence.sha256_hex(body.encode())
    return (
        f"{BEGIN}\n"
        f"方式 / algorithm: {ALGORITHM}\n"
        f"公開鍵指紋 / key fingerprint: {key_fingerprint}\n"
        f"本文のSHA-256 / body sha256: {digest}\n"
        f"署名 / signature: {signature}\n"
        f"{END}\n"
    )


def sign_text(body: str, key: Ed25519PrivateKey) -> str:
    """BODY (ending with a newline) followed by its signature block."""
    if not body.endswith("\n"):
        body += "\n"
    signature = evidence.sign_b64(key, body.encode())
    return body + _signature_block(body, fingerprint(key.public_key()), signature)


@dataclass(frozen=True)
class Verified:
    ok: bool
    kind: str  # "json" | "text"
    reason: str = ""
    payload: dict[str, Any] | None = None


PDF_MARK = b"%KAIRAN-SIGNATURE "


def sign_pdf(pdf: bytes, key: Ed25519PrivateKey) -> bytes:
    """PDF followed by one comment line (after %%EOF, which PDF readers ignore) holding the
    algorithm, the key fingerprint and the Ed25519 signature over every byte before it."""
    if not pdf.endswith(b"\n"):
        pdf += b"\n"
    signature = base64.b64encode(key.sign(pdf)).decode()
    line = f"{ALGORITHM} {fingerprint(key.public_key())} {signature}\n"
    return pdf + PDF_MARK + line.encode()


def _verify_pdf(data: bytes, public_key: Ed25519PublicKey) -> Verified:
    cut = data.rfind(b"\n" + PDF_MARK)
    if cut < 0 or not data.endswith(b"\n"):
        return Verified(
            False, "pdf", "署名欄がない PDF です（Kairan が発行した文書ではありません）"
        )
    body, trailer = data[: cut + 1], data[cut + 1 + len(PDF_MARK) : -1]
    try:
        algorithm, key_fp, signature = trailer.decode("ascii").split(" ")
        value = base64.b64decode(signature, validate=True)
    except ValueError:
        return Verified(False, "pdf", "署名欄が壊れています")
    if algorithm != ALGORITHM:
        return Verified(False, "pdf", "未対応の署名方式です")
    if key_fp != fingerprint(public_key):
        return Verified(False, "pdf", "この装置とは別の鍵で署名されています")
    if not evidence.verify(public_key, value, body):
        return Verified(False, "pdf", "署名が内容と一致しません（改変されています）")
    return Verified(True, "pdf")


def verify_document(data: bytes, public_key: Ed25519PublicKey) -> Verified:
    """Verify a signed JSON, text or PDF document against PUBLIC_KEY (strictly, byte for
    byte)."""
    if data.startswith(b"%PDF-"):
        return _verify_pdf(data, public_key)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return Verified(False, "unknown", "ファイルが UTF-8 のテキストではありません")
    if text.lstrip().startswith("{"):
        return _verify_json(text, public_key)
    return _verify_text(text, public_key)


def _verify_json(text: str, public_key: Ed25519PublicKey) -> Verified:
    try:
        document = json.loads(text)
        payload = document["payload"]
        signature = document["signature"]
        value = base64.b64decode(signature["value"], validate=True)
    except (ValueError, KeyError, TypeError):
        return Verified(False, "json", "署名付きの Kairan 文書ではありません")
    if not isinstance(payload, dict):
        return Verified(False, "json", "署名付きの Kairan 文書ではありません")
    if _render_json(document) != text:
        return Verified(False, "json", "ファイルが変更されています（発行時の内容と一致しません）")
    if signature.get("algorithm") != ALGORITHM:
        return Verified(False, "json", "未対応の署名方式です")
    if signature.get("key_fingerprint") != fingerprint(public_key):
        return Verified(False, "json", "この装置とは別の鍵で署名されています")
    if not evidence.verify(public_key, value, canonical(payload)):
        return Verified(False, "json", "署名が内容と一致しません（改変されています）")
    return Verified(True, "json", payload=payload)


def _verify_text(text: str, public_key: Ed25519PublicKey) -> Verified:
    marker = "\n" + BEGIN + "\n"
    if text.count(marker) != 1:
        return Verified(False, "text", "署名欄がない、または複数あります")
    head, _ = text.split(marker)
    body = head + "\n"
    block = text[len(body) :]
    lines = block.splitlines()
    try:
        signature = lines[4].split(": ", 1)[1]
        value = base64.b64decode(signature, validate=True)
    except (IndexError, ValueError):
        return Verified(False, "text", "署名欄が壊れています")
    if block != _signature_block(body, fingerprint(public_key), signature):
        return Verified(
            False, "text", "本文または署名欄が変更されているか、別の鍵で署名されています"
        )
    if not evidence.verify(public_key, value, body.encode()):
        return Verified(False, "text", "署名が内容と一致しません（改変されています）")
    return Verified(True, "text")

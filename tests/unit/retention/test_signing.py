"""Signed documents (S11, S13): any edit of a certificate fails verification."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from kairand.reports.signing import (
    load_public_key_pem,
    public_key_pem,
    sign_json,
    sign_text,
    verify_document,
)

KEY = Ed25519PrivateKey.generate()
OTHER = Ed25519PrivateKey.generate()
PAYLOAD = {"kind": "test", "counts": {"unfollow": 3, "annual_expiry": 12}, "note": "削除証明書"}
TEXT = "削除証明書\n\n合計　15 件\n"


def test_sign_and_verify_both_forms() -> None:
    """S11: a freshly signed document verifies against the public key, not against another."""
    for document in (sign_json(PAYLOAD, KEY), sign_text(TEXT, KEY)):
        assert verify_document(document.encode(), KEY.public_key()).ok
        assert not verify_document(document.encode(), OTHER.public_key()).ok
    verified = verify_document(sign_json(PAYLOAD, KEY).encode(), KEY.public_key())
    assert verified.payload == PAYLOAD


def test_public_key_pem_round_trip() -> None:
    """S13: the exported public key verifies documents offline."""
    public = load_public_key_pem(public_key_pem(KEY.public_key()).encode())
    assert verify_document(sign_text(TEXT, KEY).encode(), public).ok


@pytest.mark.parametrize("form", ["json", "text"])
def test_re_signing_with_another_key_is_detected(form: str) -> None:
    """S11: a forger who re-signs an edited document with their own key is refused."""
    document = sign_json(PAYLOAD, OTHER) if form == "json" else sign_text(TEXT, OTHER)
    assert not verify_document(document.encode(), KEY.public_key()).ok


@settings(max_examples=300, deadline=None)
@given(
    form=st.sampled_from(["json", "text"]),
    position=st.floats(min_value=0, max_value=1, exclude_max=True),
    replacement=st.characters(codec="utf-8", exclude_categories=["Cs"]),
    insert=st.booleans(),
)
def test_any_edit_fails(form: str, position: float, replacement: str, insert: bool) -> None:
    """S11, S13: changing, or inserting, any single character anywhere — body, numbers,
    whitespace, signature block — makes verification fail."""
    document = sign_json(PAYLOAD, KEY) if form == "json" else sign_text(TEXT, KEY)
    index = int(position * len(document))
    if insert:
        edited = document[:index] + replacement + document[index:]
    else:
        assume(document[index] != replacement)
        edited = document[:index] + replacement + document[index + 1 :]
    assert not verify_document(edited.encode(), KEY.public_key()).ok

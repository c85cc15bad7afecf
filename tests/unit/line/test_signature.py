"""Webhook signature and envelope parsing (pure parts of kairand.line.webhook)."""

from __future__ import annotations

import pytest

from kairand.line.webhook import MalformedBody, parse_envelope, signature_for, signature_ok

SECRET = "8c570fa6dd201bb328f1c1eac23a96d8"
BODY = b'{"destination":"U8e742f61d673b39c7fff3cecb7536ef0","events":[]}'
EXPECTED = "GhRKmvmHys4Pi8DxkF4+EayaH0OqtJtaZxgTD9fMDLs="


def test_line_documentation_test_vector() -> None:
    """N1: LINE's published signature test vector (docs/line-facts.md)."""
    assert signature_for(SECRET, BODY) == EXPECTED
    assert signature_ok(SECRET, BODY, EXPECTED)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        EXPECTED[:-2],
        EXPECTED.lower(),
        "GhRKmvmHys4Pi8DxkF4+EayaH0OqtJtaZxgTD9fMDLt=",
        "あ",
    ],
)
def test_wrong_or_missing_signatures_fail(header: str | None) -> None:
    """N1: anything but the exact signature fails (constant-time compare, no exception)."""
    assert not signature_ok(SECRET, BODY, header)


def test_signature_is_over_the_raw_bytes() -> None:
    """N1: re-serialising the JSON (spaces) changes the signature: the raw body is what counts."""
    assert not signature_ok(SECRET, BODY.replace(b",", b", "), EXPECTED)


def test_envelope_keeps_user_and_tolerates_unknown_fields() -> None:
    """LINE adds fields without notice: they are kept in the stored body, not refused."""
    body = (
        b'{"destination":"Ux","events":[{"type":"follow","timestamp":5,"webhookEventId":"01A",'
        b'"source":{"type":"user","userId":"U0123456789abcdef0123456789abcdef"},'
        b'"brandNew":{"x":1}}],"extra":true}'
    )
    parsed = parse_envelope(body)
    destination, events = parsed.destination, parsed.events
    assert destination == "Ux" and events[0].line_user_id == "U0123456789abcdef0123456789abcdef"
    assert "brandNew" in events[0].body and events[0].event_timestamp == 5


def test_envelope_without_event_ids_is_malformed() -> None:
    """Events need webhookEventId (dedupe), type and timestamp (ordering)."""
    with pytest.raises(MalformedBody):
        parse_envelope(b'{"destination":"","events":[{"type":"follow","timestamp":1}]}')

"""Mail messages: encodings, List-Unsubscribe, Authentication-Results, DSNs, log redaction
(K9, S8)."""

from __future__ import annotations

import email
import email.policy
import io
import logging

import pytest

from kairand.logs import get_logger, setup_logging
from kairand.mail import message
from tests.support.mail_settings import dsn

AUTHSERV = "mx.city.example.jp"


def parse(msg: bytes) -> email.message.EmailMessage:
    parsed = email.message_from_bytes(msg, policy=email.policy.default)
    assert isinstance(parsed, email.message.EmailMessage)
    return parsed


@pytest.mark.req("K9")
@pytest.mark.parametrize("encoding", ["iso-2022-jp", "utf-8"])
def test_build_round_trips_japanese_and_carries_unsubscribe(encoding: message.Encoding) -> None:
    msg = message.build(
        sender="防災メール <alert@city.example.jp>",
        to="guardian@example.net",
        subject="【防災】避難所開設のお知らせ",
        body="本町小学校を避難所として開設しました。\n詳しくは市のホームページをご覧ください。",
        message_id="<m1@kairan.invalid>",
        encoding=encoding,
        unsubscribe=("touroku@city.example.jp", "tok_abcdefghijklmnopqrstu"),
    )
    raw = msg.as_bytes()
    if encoding == "iso-2022-jp":
        assert all(b < 0x80 for b in raw), "ISO-2022-JP mail is 7bit throughout"
        assert b"\x1b$B" in raw  # JIS escape in the body
    back = parse(raw)
    assert back["Subject"] == "【防災】避難所開設のお知らせ"
    assert back.get_content_charset() == encoding
    assert "本町小学校" in back.get_content()
    assert back["Message-ID"] == "<m1@kairan.invalid>"
    assert back["From"].addresses[0].display_name == "防災メール"
    assert back["List-Unsubscribe"].strip() == (
        "<mailto:touroku@city.example.jp?subject=stop-tok_abcdefghijklmnopqrstu>"
    )
    assert "List-Unsubscribe-Post" not in back  # one-click needs an https URL


@pytest.mark.req("K9")
def test_one_click_header_only_with_an_https_stop_page() -> None:
    msg = message.build(
        sender="a@city.example.jp",
        to="b@example.net",
        subject="s",
        body="b",
        message_id="<m2@kairan.invalid>",
        encoding="utf-8",
        unsubscribe=("touroku@city.example.jp", "tok"),
        unsubscribe_url="https://city.example.jp/mail/stop",
    )
    assert "<https://city.example.jp/mail/stop?t=tok>" in msg["List-Unsubscribe"]
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


@pytest.mark.req("K9")
def test_iso_2022_jp_refuses_a_character_it_cannot_carry() -> None:
    with pytest.raises(ValueError, match="iso-2022-jp"):
        message.build(
            sender="a@city.example.jp",
            to="b@example.net",
            subject="お知らせ",
            body="𠮷野家の前",  # JIS X 0213 only
            message_id="<m3@kairan.invalid>",
            encoding="iso-2022-jp",
        )


def _with_auth(*headers: str) -> bytes:
    lines = [f"Authentication-Results: {h}" for h in headers]
    return ("\r\n".join([*lines, "From: g@example.net", "Subject: x", "", ""])).encode()


@pytest.mark.req("K9")
@pytest.mark.parametrize(
    ("headers", "passed"),
    [
        ((f"{AUTHSERV}; spf=pass smtp.mailfrom=example.net; dkim=pass; dmarc=pass",), True),
        ((f"{AUTHSERV}; spf=pass smtp.mailfrom=example.net",), True),
        ((f"{AUTHSERV}; spf=fail; dkim=pass header.d=example.net; dmarc=pass",), True),
        ((f"{AUTHSERV}; spf=softfail; dkim=none",), False),
        ((f"{AUTHSERV}; spf=pass; dkim=fail; dmarc=fail",), False),
        # A forger's own header (another authserv-id) is ignored.
        (("evil.example; spf=pass; dkim=pass; dmarc=pass",), False),
        (("evil.example; spf=pass", f"{AUTHSERV}; spf=fail; dmarc=fail"), False),
        ((), False),
    ],
)
def test_authentication_results(headers: tuple[str, ...], passed: bool) -> None:
    assert message.parse_inbound(_with_auth(*headers), AUTHSERV).inbound.authenticated is passed


@pytest.mark.req("K9")
def test_dsn_permanent_failure_is_recognised() -> None:
    bounce = message.parse_dsn(dsn("Gone@Example.NET", "5.1.1"))
    assert bounce is not None
    assert bounce.recipients == ("Gone@example.net",)
    assert bounce.original_message_id == "<orig@kairan.invalid>"


@pytest.mark.req("K9")
def test_dsn_delay_and_transient_failure_do_not_count_and_plain_mail_is_no_dsn() -> None:
    delayed = message.parse_dsn(dsn("a@example.net", "4.4.1", action="delayed"))
    transient = message.parse_dsn(dsn("a@example.net", "4.2.2"))
    assert delayed is not None and delayed.recipients == ()
    assert transient is not None and transient.recipients == ()
    assert message.parse_dsn(b"From: a@example.net\r\nSubject: hi\r\n\r\n1\r\n") is None


@pytest.mark.req("K9")
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("山田 <Taro.Yamada@Example.JP>", "Taro.Yamada@example.jp"),
        ("plain@example.net", "plain@example.net"),
        ("not an address", None),
        ("a@b", None),
    ],
)
def test_normalize_address(raw: str, expected: str | None) -> None:
    assert message.normalize_address(raw) == expected


@pytest.mark.req("S8")
def test_mail_addresses_never_reach_a_log_line() -> None:
    stream = io.StringIO()
    setup_logging("debug", stream=stream, with_time=False)
    try:
        log = get_logger("kairand.mail.test")
        log.warning("mail.reply.failed to guardian@example.net", to="<taro+x@city.example.jp>")
        try:
            raise ValueError("bad address hanako@example.org")
        except ValueError:
            log.error("mail.error", exc_info=True)
        logging.getLogger("aiosmtplib").warning("rcpt %s refused", "jiro@example.com")
    finally:
        setup_logging("info")
    text = stream.getvalue()
    assert "@" not in text
    assert text.count("[redacted]") == 4

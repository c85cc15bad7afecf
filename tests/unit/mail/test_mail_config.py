"""The [mail] config section and the mail sender's own rate limit (K9)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kairand.config import parse_config
from kairand.errors import ConfigError
from kairand.mail.component import settings_from
from kairand.mail.sender import MailSender
from kairand.store.database import Store

BASE = {
    "enabled": True,
    "from_address": "〇〇市 防災メール <alert@city.example.jp>",
    "registration_address": "touroku@city.example.jp",
    "authserv_id": "mx.city.example.jp",
    "smtp_host": "smtp.city.example.jp",
    "imap_host": "imap.city.example.jp",
    "imap_username": "touroku",
}


def section(**overrides: object) -> dict[str, object]:
    return {"mail": {**BASE, **overrides}}


@pytest.mark.req("K9")
def test_mail_section_maps_to_settings_with_tls_defaults() -> None:
    config = parse_config(section(per_minute=30), base_dir=Path("/tmp"))
    settings = settings_from(config.mail)
    assert settings.smtp_security == "starttls" and settings.smtp_port == 587
    assert settings.imap_security == "tls" and settings.imap_port == 993
    assert settings.encoding == "iso-2022-jp"
    assert settings.smtp_username is None and settings.unsubscribe_url is None
    assert settings.per_minute == 30


@pytest.mark.req("K9")
def test_plaintext_is_refused_for_a_remote_host() -> None:
    config = parse_config(section(smtp_security="none"), base_dir=Path("/tmp"))
    with pytest.raises(ConfigError, match="loopback"):
        settings_from(config.mail)
    local = parse_config(
        section(smtp_security="none", smtp_host="127.0.0.1"),
        base_dir=Path("/tmp"),
    )
    assert settings_from(local.mail).smtp_host == "127.0.0.1"


@pytest.mark.req("K9")
def test_unknown_keys_and_bad_values_are_refused() -> None:
    with pytest.raises(ConfigError, match="mail"):
        parse_config(section(per_minute=0), base_dir=Path("/tmp"))
    with pytest.raises(ConfigError, match="mail"):
        parse_config(section(encoding="shift_jis"), base_dir=Path("/tmp"))


@pytest.mark.req("K9")
def test_sender_rate_limit_follows_messages_per_minute(store: Store) -> None:
    config = parse_config(
        section(per_minute=90, smtp_host="127.0.0.1", smtp_security="none"),
        base_dir=Path("/tmp"),
    )
    sender = MailSender(store, settings_from(config.mail), None)
    assert sender.bucket.rate == pytest.approx(1.5)  # 90 a minute = 1.5 a second

"""Settings of the mail channel: the city's SMTP relay and registration mailbox (both reached
outbound; the appliance accepts no inbound connection). Passwords are never here: they come
from the keyring (kairand.keys.secrets MAIL_SMTP_PASSWORD / MAIL_IMAP_PASSWORD)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal

from kairand.errors import ConfigError
from kairand.mail.message import Encoding

SmtpSecurity = Literal["starttls", "tls", "none"]
ImapSecurity = Literal["tls", "none"]


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class MailSettings:
    from_address: str
    """Sender of alerts and replies, e.g. "〇〇市 防災メール <alert@city.example.jp>"."""
    registration_address: str
    """The published 空メール address; also the List-Unsubscribe mailto target."""
    authserv_id: str
    """The relay's authserv-id in Authentication-Results; only its verdicts are trusted."""
    smtp_host: str
    imap_host: str
    smtp_port: int = 587
    smtp_security: SmtpSecurity = "starttls"
    smtp_username: str | None = None
    imap_port: int = 993
    imap_security: ImapSecurity = "tls"
    imap_username: str = ""
    imap_mailbox: str = "INBOX"
    encoding: Encoding = "iso-2022-jp"
    per_minute: int = 60
    """The relay's cap on messages a minute (the mail sender's own rate limit)."""
    burst: int = 5
    bounce_threshold: int = 3
    """Permanent failures (DSN 5.x.x) after which an address is stopped."""
    timeout_seconds: float = 30.0
    message_id_domain: str = "kairan.invalid"
    unsubscribe_url: str | None = None
    """An https one-click stop page, if the city runs one; otherwise mailto only."""
    poll_seconds: float = 60.0
    idle: bool = True
    """Wait in IMAP IDLE when the server offers it (else: poll every poll_seconds)."""

    def __post_init__(self) -> None:
        for name, host, security in (
            ("smtp", self.smtp_host, self.smtp_security),
            ("imap", self.imap_host, self.imap_security),
        ):
            if security == "none" and not _loopback(host):
                raise ConfigError(
                    f"mail.{name}_security = 'none' is only allowed for a loopback host",
                    f"use TLS for {host}",
                )
        if self.per_minute < 1 or self.bounce_threshold < 1:
            raise ConfigError(
                "mail.per_minute and mail.bounce_threshold must be at least 1",
                "set positive numbers",
            )

"""Mail channel settings pointing at the test bed (aiosmtpd relay, dovecot mailbox), and a
sample delivery status notification."""

from __future__ import annotations

from kairand.mail.settings import MailSettings
from tests.support.mail_servers import USER

AUTHSERV = "mx.city.example.jp"
REGISTRATION = "touroku@city.example.jp"


def settings_for(smtp_port: int, imap_port: int, **overrides: object) -> MailSettings:
    values: dict[str, object] = {
        "from_address": "〇〇市 防災メール <alert@city.example.jp>",
        "registration_address": REGISTRATION,
        "authserv_id": AUTHSERV,
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp_port,
        "smtp_security": "none",
        "imap_host": "localhost",
        "imap_port": imap_port,
        "imap_security": "tls",
        "imap_username": USER,
        "encoding": "iso-2022-jp",
        "per_minute": 6000,
        "burst": 50,
        "bounce_threshold": 2,
        "timeout_seconds": 10.0,
    }
    values.update(overrides)
    return MailSettings(**values)  # type: ignore[arg-type]


def dsn(recipient: str, status: str, action: str = "failed") -> bytes:
    return (
        "From: MAILER-DAEMON@mx.city.example.jp\r\n"
        "To: alert@city.example.jp\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n'
        "\r\n--B\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.city.example.jp\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: {action}\r\nStatus: {status}\r\n"
        "\r\n--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        "Message-ID: <orig@kairan.invalid>\r\nSubject: x\r\n"
        "\r\n--B--\r\n"
    ).encode()

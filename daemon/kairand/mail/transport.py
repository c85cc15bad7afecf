"""Sending through the city's SMTP relay with aiosmtplib, telling apart the outcomes that
matter for exactly-once delivery.

The SMTP conversation is split into its commands so the phase of a failure is known:
- before DATA (connect, TLS, AUTH, MAIL FROM, RCPT TO): nothing was handed over -> NOT_SENT
  (transient: safe to retry) or REFUSED (5xx: permanent);
- the relay's final reply to DATA: 250 -> SENT, 5xx -> REFUSED, 4xx -> NOT_SENT;
- no final reply to DATA (timeout, connection lost): the relay may or may not have accepted
  the message -> UNCONFIRMED. Never resent automatically (see kairand.mail.sender).
"""

from __future__ import annotations

import enum
import ssl

import aiosmtplib

from kairand.mail.settings import MailSettings


class Outcome(enum.Enum):
    SENT = "sent"
    REFUSED = "failed"
    NOT_SENT = "retry"
    UNCONFIRMED = "unconfirmed"


class SmtpSession:
    """One connection to the relay for a batch of messages: `async with SmtpSession(...)`."""

    def __init__(
        self, settings: MailSettings, password: str | None, tls: ssl.SSLContext | None = None
    ) -> None:
        self.settings = settings
        self._password = password
        self._tls = tls
        self._client: aiosmtplib.SMTP | None = None

    async def __aenter__(self) -> SmtpSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None and client.is_connected:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                client.close()

    async def _connect(self) -> aiosmtplib.SMTP:
        if self._client is not None and self._client.is_connected:
            return self._client
        s = self.settings
        client = aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            use_tls=s.smtp_security == "tls",
            start_tls=s.smtp_security == "starttls",
            tls_context=self._tls,
            timeout=s.timeout_seconds,
        )
        await client.connect()
        if s.smtp_username:
            await client.login(s.smtp_username, self._password or "")
        self._client = client
        return client

    async def send(self, sender: str, recipient: str, message: bytes) -> Outcome:
        try:
            client = await self._connect()
            await client.mail(sender)
            await client.rcpt(recipient)
        except aiosmtplib.SMTPResponseException as exc:
            await self._drop()
            return Outcome.REFUSED if 500 <= exc.code < 600 else Outcome.NOT_SENT
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            await self._drop()
            return Outcome.NOT_SENT
        try:
            await client.data(message)
        except aiosmtplib.SMTPResponseException as exc:
            # A final reply: the relay answered, so it did not take the message.
            await self._drop()
            return Outcome.REFUSED if 500 <= exc.code < 600 else Outcome.NOT_SENT
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            await self._drop()
            return Outcome.UNCONFIRMED
        return Outcome.SENT

    async def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

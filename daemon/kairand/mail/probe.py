"""Connection checks for `kairanctl doctor`: can the appliance reach the
city's SMTP relay and log in to the registration mailbox? Nothing is sent or deleted."""

from __future__ import annotations

import ssl

import aioimaplib
import aiosmtplib

from kairand.mail.settings import MailSettings


async def probe_smtp(
    settings: MailSettings, password: str | None, tls: ssl.SSLContext | None
) -> str | None:
    """None when the relay greets, negotiates TLS and accepts the login; else the problem."""
    client = aiosmtplib.SMTP(
        hostname=settings.smtp_host,
        port=settings.smtp_port,
        use_tls=settings.smtp_security == "tls",
        start_tls=settings.smtp_security == "starttls",
        tls_context=tls,
        timeout=min(settings.timeout_seconds, 15),
    )
    try:
        await client.connect()
        if settings.smtp_username:
            await client.login(settings.smtp_username, password or "")
        await client.quit()
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        client.close()
        return f"{type(exc).__name__}: {exc}"
    return None


async def probe_imap(
    settings: MailSettings, password: str, tls: ssl.SSLContext | None
) -> str | None:
    """None when the mailbox accepts the login and the folder can be opened."""
    client: aioimaplib.IMAP4
    timeout = min(settings.timeout_seconds, 15)
    if settings.imap_security == "tls":
        client = aioimaplib.IMAP4_SSL(
            host=settings.imap_host, port=settings.imap_port, timeout=timeout, ssl_context=tls
        )
    else:
        client = aioimaplib.IMAP4(host=settings.imap_host, port=settings.imap_port, timeout=timeout)
    try:
        await client.wait_hello_from_server()
        response = await client.login(settings.imap_username, password)
        if response.result != "OK":
            return "the mailbox refused the login"
        response = await client.select(settings.imap_mailbox)
        if response.result != "OK":
            return f"the folder {settings.imap_mailbox!r} cannot be opened"
        await client.logout()
    except (aioimaplib.Abort, aioimaplib.CommandTimeout, OSError, TimeoutError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None

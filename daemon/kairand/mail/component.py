"""The mail channel inside the daemon: at start-up, sends left 'pending' by a crash
become 'unconfirmed' (never resent); then the registration mailbox is watched (IMAP IDLE, or
polling every `mail.poll_seconds`), approved deliveries' mail recipients are sent
(kairand.mail.deliveries), and every minute the city's annual rule, if any, is applied to mail
registrations (kairand.mail.expiry) and the notices due by mail (the re-consent mail, the
March notices: kairand.mail.notices) are sent once each. Off unless
`[mail] enabled = true`."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator
from typing import Final

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kairand.config import Config, MailSection
from kairand.keys import secrets
from kairand.logs import get_logger
from kairand.mail import expiry as mail_expiry
from kairand.mail import notices
from kairand.mail.deliveries import MailDeliveries
from kairand.mail.intake import Intake
from kairand.mail.sender import MailSender
from kairand.mail.settings import MailSettings
from kairand.runtime import CONFIG, STOPPING, STORE, TASKS
from kairand.store.database import Store

log = get_logger(__name__)

MAIL_SENDER: Final[web.AppKey[MailSender]] = web.AppKey("mail_sender")


def settings_from(section: MailSection) -> MailSettings:
    """The mail settings of the config (ConfigError for a plaintext non-loopback host)."""
    return MailSettings(
        from_address=section.from_address,
        registration_address=section.registration_address,
        authserv_id=section.authserv_id,
        smtp_host=section.smtp_host,
        imap_host=section.imap_host,
        smtp_port=section.smtp_port,
        smtp_security=section.smtp_security,
        smtp_username=section.smtp_username or None,
        imap_port=section.imap_port,
        imap_security=section.imap_security,
        imap_username=section.imap_username,
        imap_mailbox=section.imap_mailbox,
        encoding=section.encoding,
        per_minute=section.per_minute,
        bounce_threshold=section.bounce_threshold,
        timeout_seconds=section.timeout_seconds,
        message_id_domain=section.message_id_domain,
        unsubscribe_url=section.unsubscribe_url or None,
        poll_seconds=section.poll_seconds,
        idle=section.idle,
    )


def _prepare(config: Config, store: Store) -> tuple[Intake, MailSender, bytes, Ed25519PrivateKey]:
    """Blocking preparation (keyring reads, CA bundle): run off the event loop."""
    settings = settings_from(config.mail)
    smtp_password = (
        secrets.get_secret(secrets.MAIL_SMTP_PASSWORD) if settings.smtp_username else None
    )
    ca_file = config.mail.ca_file
    tls = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    hmac_key, signing_key = secrets.receipt_hmac_key(), secrets.signing_key()
    intake = Intake(
        store,
        settings,
        imap_password=secrets.get_secret(secrets.MAIL_IMAP_PASSWORD),
        smtp_password=smtp_password,
        hmac_key=hmac_key,
        signing_key=signing_key,
        tls=tls,
    )
    return intake, MailSender(store, settings, smtp_password, tls=tls), hmac_key, signing_key


async def mail_component(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    if not config.mail.enabled:
        yield
        return
    intake, sender, hmac_key, signing_key = await asyncio.get_running_loop().run_in_executor(
        None, _prepare, config, app[STORE]
    )
    await sender.recover()
    app[MAIL_SENDER] = sender

    app[TASKS].worker("mail-intake", lambda: intake.watch(app[STOPPING]))
    deliveries = MailDeliveries(app[STORE], sender, poll_seconds=config.mail.send_poll_seconds)
    app[TASKS].worker("mail-deliveries", lambda: deliveries.run(app[STOPPING]))

    wake = asyncio.Event()
    app[notices.WAKE] = wake  # the API component, started after this one, hands it on

    async def notices_loop() -> None:
        stopping = app[STOPPING]
        while not stopping.is_set():
            wake.clear()
            try:
                now = int(time.time())
                expired = await app[STORE].write(mail_expiry.run_annual, now, hmac_key, signing_key)
                if expired:
                    log.info("mail.annual_expired", count=expired)
                await notices.run_once(app[STORE], sender, now)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep the worker alive; the next check retries
                log.error("mail.notices_failed", error=type(exc).__name__)
            with contextlib.suppress(TimeoutError):  # stopping: the task group cancels this
                await asyncio.wait_for(wake.wait(), notices.CHECK_SECONDS)

    app[TASKS].worker("mail-notices", notices_loop)
    log.info("mail.started", poll_seconds=config.mail.poll_seconds, idle=config.mail.idle)
    yield

"""Alerts by mail, each (delivery, subscriber) sent at most once and never silently lost.

The rule (documented in docs/mail.md):
1. A Message-ID is generated and stored with the row (delivery, subscriber) in state
   'pending' in its own committed transaction BEFORE the relay is contacted.
2. The relay's answer decides the row: 250 after DATA -> 'sent'; a permanent refusal ->
   'failed'; a failure before DATA or a 4xx -> 'retry' (nothing was handed over: the next
   attempt reuses the same Message-ID).
3. No final reply after DATA (timeout, lost connection), or a crash that leaves a row
   'pending' (found at start-up by `recover`) -> 'unconfirmed': the relay may have the
   message. It is NOT resent automatically; it is counted and flagged for a person, like
   LINE's rule for a retry key older than 24 hours. A person who checks the relay's log for
   the stored Message-ID can decide to send again by hand.

Notices to program members (the re-consent mail, the March notice: kairand.mail.notices)
follow the same rule per (subscriber, cycle) in mail_notices; a notice left in 'retry' is
tried again on the next run with its stored Message-ID, at most MAX_NOTICE_ATTEMPTS times.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.mime.text import MIMEText

from kairand.delivery.ratelimit import TokenBucket
from kairand.logs import get_logger
from kairand.mail import message
from kairand.mail.settings import MailSettings
from kairand.mail.transport import Outcome, SmtpSession
from kairand.store import mail as mail_store
from kairand.store.database import Connection, Store

log = get_logger(__name__)


MAX_NOTICE_ATTEMPTS = 5


@dataclass(frozen=True)
class Alert:
    delivery_id: int
    subject: str
    body: str


@dataclass(frozen=True)
class MailNotice:
    """One notice to one subscriber, sent at most once per CYCLE (its stored key)."""

    subscriber_id: int
    cycle: str
    subject: str
    body: str


class MailSender:
    def __init__(
        self,
        store: Store,
        settings: MailSettings,
        password: str | None,
        *,
        tls: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.time,
        bucket: TokenBucket | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self._password = password
        self._tls = tls
        self._clock = clock
        self.bucket = bucket or TokenBucket(settings.per_minute / 60.0, burst=settings.burst)

    async def recover(self) -> int:
        """At start-up, before any send: rows left 'pending' by a crash become 'unconfirmed'."""
        count = await self.store.write(mail_store.recover_pending, int(self._clock()))
        count += await self.store.write(mail_store.recover_pending_notices, int(self._clock()))
        if count:
            await self.store.write(mail_store.bump, "sends_unconfirmed", count)
            log.warning("mail.send.unconfirmed_after_restart", count=count)
        return count

    async def send_alert(self, alert: Alert, subscriber_ids: list[int]) -> dict[str, int]:
        """Send ALERT to each subscriber once; returns how many rows ended in each state
        (including 'skipped' for rows already handled by an earlier run)."""
        result: dict[str, int] = {}
        async with SmtpSession(self.settings, self._password, self._tls) as session:
            for subscriber_id in subscriber_ids:
                state = await self._send_one(session, alert, subscriber_id)
                result[state] = result.get(state, 0) + 1
        log.info("mail.send.done", delivery=alert.delivery_id, **result)
        return result

    async def _send_one(self, session: SmtpSession, alert: Alert, subscriber_id: int) -> str:
        fresh = message.new_message_id(self.settings.message_id_domain)
        state, message_id = await self.store.write(
            mail_store.claim_send, alert.delivery_id, subscriber_id, fresh, int(self._clock())
        )
        if not (state == "pending" and message_id == fresh) and state != "retry":
            return "skipped"
        recipient = await self.store.read(_deliverable_address, subscriber_id)
        if recipient is None:
            await self._finish(alert, subscriber_id, "failed")
            return "failed"
        address, token = recipient
        try:
            mime = self._build(
                address, token, alert.subject, alert.body, message_id, self.settings.encoding
            )
        except ValueError:
            await self._finish(alert, subscriber_id, "failed")
            return "failed"
        await self.bucket.acquire()
        envelope_from = _envelope(self.settings.from_address)
        outcome = await session.send(envelope_from, address, mime.as_bytes())
        await self._finish(alert, subscriber_id, outcome.value)
        if outcome is Outcome.UNCONFIRMED:
            log.warning("mail.send.unconfirmed", delivery=alert.delivery_id)
        return outcome.value

    async def send_notices(self, notices: Sequence[MailNotice]) -> dict[str, int]:
        """Send each notice once per (subscriber, cycle); counts by final state (including
        'skipped' for a notice already sent, unconfirmed or given up)."""
        result: dict[str, int] = {}
        if not notices:
            return result
        async with SmtpSession(self.settings, self._password, self._tls) as session:
            for notice in notices:
                state = await self._notice_one(session, notice)
                result[state] = result.get(state, 0) + 1
        log.info("mail.notices.done", **result)
        return result

    async def _notice_one(self, session: SmtpSession, notice: MailNotice) -> str:
        fresh = message.new_message_id(self.settings.message_id_domain)
        now = int(self._clock())
        state, message_id = await self.store.write(
            mail_store.claim_notice,
            notice.subscriber_id,
            notice.cycle,
            fresh,
            now,
            MAX_NOTICE_ATTEMPTS,
        )
        if state != "pending":
            return "skipped" if state != "failed" else "failed"
        recipient = await self.store.read(_deliverable_address, notice.subscriber_id)
        mime = None
        if recipient is not None:
            address, token = recipient
            # A staff-written purpose notice may hold a character ISO-2022-JP lacks: then the
            # notice goes in UTF-8, as the intake's replies do.
            encodings: tuple[message.Encoding, ...] = (self.settings.encoding, "utf-8")
            for encoding in encodings:
                try:
                    mime = self._build(
                        address, token, notice.subject, notice.body, message_id, encoding
                    )
                    break
                except ValueError:
                    continue
        if recipient is None or mime is None:
            await self.store.write(_finish_notice, notice, "failed", int(self._clock()))
            return "failed"
        await self.bucket.acquire()
        outcome = await session.send(
            _envelope(self.settings.from_address), recipient[0], mime.as_bytes()
        )
        await self.store.write(_finish_notice, notice, outcome.value, int(self._clock()))
        if outcome is Outcome.UNCONFIRMED:
            log.warning("mail.notice.unconfirmed")
        return outcome.value

    def _build(
        self,
        address: str,
        token: str,
        subject: str,
        body: str,
        message_id: str,
        encoding: message.Encoding,
    ) -> MIMEText:
        """A mail from the city's address with its unsubscribe headers (ValueError: cannot be
        encoded as ENCODING)."""
        return message.build(
            sender=self.settings.from_address,
            to=address,
            subject=subject,
            body=body,
            message_id=message_id,
            encoding=encoding,
            unsubscribe=(self.settings.registration_address, token),
            unsubscribe_url=self.settings.unsubscribe_url,
        )

    async def _finish(self, alert: Alert, subscriber_id: int, state: str) -> None:
        await self.store.write(_finish, alert.delivery_id, subscriber_id, state, int(self._clock()))


def _envelope(from_header: str) -> str:
    return message.normalize_address(from_header) or from_header


def _finish(conn: Connection, delivery_id: int, subscriber_id: int, state: str, now: int) -> None:
    mail_store.finish_send(conn, delivery_id, subscriber_id, state, now)
    mail_store.bump(conn, f"sends_{state}")


def _finish_notice(conn: Connection, notice: MailNotice, state: str, now: int) -> None:
    mail_store.finish_notice(conn, notice.subscriber_id, notice.cycle, state, now)
    mail_store.bump(conn, f"notices_{state}")


def _deliverable_address(conn: Connection, subscriber_id: int) -> tuple[str, str] | None:
    address = mail_store.address_of(conn, subscriber_id)
    if address is None:
        return None
    row = mail_store.load(conn, address)
    if row is None or row.stage != "registered":
        return None
    return address, row.stop_token

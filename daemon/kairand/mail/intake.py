"""The registration mailbox, read over IMAP (TLS) with aioimaplib: 空メール registration,
answers, stops and bounces. `watch` keeps one connection in IMAP IDLE (RFC 2177) so a new mail
is handled as soon as the server announces it, and falls back to polling every
`mail.poll_seconds` when the server offers no IDLE (or `mail.idle` is off). Each mail is
handled in one store transaction (the pure kairand.mail.dialogue decides), the replies are
sent, then the mail is deleted from the mailbox.

A mail already handled (its digest is in `mail_inbox_seen`) is only deleted again, so a crash
between the transaction and the deletion never handles a mail twice. (A crash between the
transaction and the reply loses that reply; the person's next mail gets a fresh one.)
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hashlib
import secrets
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aioimaplib
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kairand.conversation.survey import SurveyDefinition, default_survey
from kairand.logs import get_logger
from kairand.mail import dialogue, message
from kairand.mail import programs as program_dialogue
from kairand.mail.settings import MailSettings
from kairand.mail.transport import Outcome, SmtpSession
from kairand.programs import dialogue as program_ops
from kairand.programs.model import District, ProgramDefinition
from kairand.retention.purge import record_deletion
from kairand.store import mail as mail_store
from kairand.store import mail_programs
from kairand.store import programs as program_store
from kairand.store import survey as survey_store
from kairand.store.database import Connection, Store

log = get_logger(__name__)


IDLE_RENEW_SECONDS = 25 * 60
"""RFC 2177: a client re-issues IDLE at least every 29 minutes (servers drop idle clients)."""


class ImapError(Exception):
    """The mailbox could not be read (login refused, command failed): nothing was changed."""


@dataclass
class Handled:
    event: str
    sender: str | None = None
    replies: tuple[dialogue.Reply, ...] = ()
    in_reply_to: str | None = None
    counts: dict[str, int] = field(default_factory=dict)


def digest_of(raw: bytes, message_id: str) -> str:
    return hashlib.sha256((message_id or "").encode() + b"\0" + raw[:65536]).hexdigest()


def handle(
    conn: Connection,
    *,
    raw: bytes,
    settings: MailSettings,
    now: int,
    hmac_key: bytes,
    signing_key: Ed25519PrivateKey,
    new_code: Callable[[], str],
    new_token: Callable[[], str],
) -> Handled:
    """One inbound mail, in the caller's transaction: decide and store (no network)."""
    bounce = message.parse_dsn(raw)
    parsed = message.parse_inbound(raw, settings.authserv_id)
    digest = digest_of(raw, parsed.message_id)
    if mail_store.seen(conn, digest):
        return Handled("duplicate")
    mail_store.mark_seen(conn, digest, now)
    if bounce is not None:
        stopped = 0
        for address in bounce.recipients:
            if mail_store.record_bounce(conn, address, settings.bounce_threshold, now):
                stopped += 1
        mail_store.bump(conn, "bounces", len(bounce.recipients))
        if stopped:
            mail_store.bump(conn, "bounced_stopped", stopped)
        return Handled("bounce", counts={"bounced": len(bounce.recipients), "stopped": stopped})
    if parsed.sender is None:
        mail_store.bump(conn, "inbound_unreadable")
        return Handled("unreadable")
    current = survey_store.current(conn)
    survey: SurveyDefinition = current[1] if current else default_survey()
    row = mail_store.load(conn, parsed.sender)
    state = (
        dialogue.Subscriber(
            stage=row.stage,  # type: ignore[arg-type]  # CHECK constraint: one of Stage
            stop_token=row.stop_token,
            confirm_code=row.confirm_code,
            attempts=row.attempts,
            question=row.question,
            answers=row.answers,
        )
        if row
        else None
    )
    if row is not None and state is not None and row.stage == "registered":
        joined = _program_mail(
            conn, row.id, parsed.sender, parsed.inbound, now, hmac_key, signing_key
        )
        if joined is not None:
            mail_store.bump(conn, f"inbound_{joined.event}")
            return Handled(joined.event, parsed.sender, joined.replies, parsed.message_id or None)
    outcome = dialogue.step(state, parsed.inbound, survey, new_code, new_token)
    if outcome.event in ("completed", "help") and outcome.replies:
        offers = _program_offers(conn)
        if offers:
            first = outcome.replies[0]
            outcome = dataclasses.replace(
                outcome,
                replies=(
                    dataclasses.replace(first, body=f"{first.body}\n\n{offers}"),
                    *outcome.replies[1:],
                ),
            )
    mail_store.bump(conn, f"inbound_{outcome.event}")
    if outcome.delete:
        deleted = mail_store.delete(conn, parsed.sender)
        if deleted is not None:
            record_deletion(
                conn,
                line_user_id=parsed.sender,  # the subject: only its HMAC is stored
                reason="request" if outcome.event == "stopped" else "retention",
                deleted=deleted,
                now=now,
                hmac_key=hmac_key,
                signing_key=signing_key,
                actor="mail",
                action="mail_subscriber.delete",
                audit_detail={"event": outcome.event, **deleted},
            )
    elif outcome.state is not None:
        s = outcome.state
        mail_store.save(
            conn,
            parsed.sender,
            stage=s.stage,
            stop_token=s.stop_token,
            confirm_code=s.confirm_code,
            attempts=s.attempts,
            question=s.question,
            answers=dict(s.answers),
            now=now,
        )
    return Handled(outcome.event, parsed.sender, outcome.replies, parsed.message_id or None)


def _programs(conn: Connection) -> dict[str, ProgramDefinition]:
    """The active non-default programs a mail subscriber can join."""
    return {
        row.code: ProgramDefinition.model_validate(row.definition)
        for row in program_store.list_programs(conn)
        if not row.is_default and row.active
    }


def _program_offers(conn: Connection) -> str:
    """The lines of the help and completion mails that tell how to join each program."""
    return "\n".join(
        f"■{d.name}\n{d.description}\n登録する場合は「{d.name}」と本文に書いて返信してください。"
        for d in _programs(conn).values()
    )


def _program_mail(
    conn: Connection,
    subscriber_id: int,
    address: str,
    inbound: dialogue.Inbound,
    now: int,
    hmac_key: bytes,
    signing_key: Ed25519PrivateKey,
) -> program_dialogue.Outcome | None:
    """A registered subscriber's mail that belongs to a program's dialogue (its name, or a
    reply while a program conversation is under way), decided and stored; None when the city
    dialogue handles it (停止 and 変更 always go there)."""
    line = dialogue.first_line(inbound.body)
    subject = dialogue.clean_subject(inbound.subject)
    if (
        dialogue.stop_token_in(inbound) is not None
        or line.strip().lower() in dialogue.STOP_WORDS + dialogue.CHANGE_WORDS
        or (not line and subject.strip().lower() in dialogue.STOP_WORDS)
    ):
        return None
    programs = _programs(conn)
    if not programs:
        return None
    members = {
        code: program_dialogue.MailMemberView(
            m.consent_version, m.registered, m.conversation, m.answers
        )
        for code, m in mail_programs.memberships(conn, subscriber_id).items()
        if code in programs
    }
    districts = [District(*d) for d in program_store.districts(conn)]
    code = program_dialogue.claims(line, subject, programs)
    if code is not None:
        outcome = program_dialogue.start(code, programs[code], districts, members.get(code))
    else:
        under_way = [c for c, m in members.items() if program_dialogue.active(m)]
        if not under_way:
            return None
        code = under_way[0]
        outcome = program_dialogue.step(code, programs[code], districts, members[code], line)
    for op in outcome.ops:
        if isinstance(op, program_ops.Leave):
            deleted = mail_programs.leave(conn, subscriber_id, op.program)
            agreed = members.get(op.program)
            if deleted["membership"] and agreed is not None and agreed.consent_version > 0:
                record_deletion(
                    conn,
                    line_user_id=address,  # the subject: only its HMAC is stored
                    reason="request",
                    deleted={"program": op.program, **deleted},
                    now=now,
                    hmac_key=hmac_key,
                    signing_key=signing_key,
                    actor="mail",
                    action="program.leave",
                    audit_detail={"program": op.program, **deleted},
                )
        else:
            _apply(conn, subscriber_id, op, now)
    return outcome


def _apply(conn: Connection, subscriber_id: int, op: program_ops.Operation, now: int) -> None:
    if isinstance(op, program_ops.Join):
        mail_programs.join(conn, subscriber_id, op.program, op.consent_version, now)
    elif isinstance(op, program_ops.SetState):
        mail_programs.set_state(conn, subscriber_id, op.program, dict(op.state))
    elif isinstance(op, program_ops.SetDistricts):
        mail_programs.set_answer(conn, subscriber_id, op.program, op.question, op.codes)
    elif isinstance(op, program_ops.SetAnswer):
        values = [value for value, _ in op.values]
        mail_programs.set_answer(conn, subscriber_id, op.program, op.question, values)
    elif isinstance(op, program_ops.MarkRegistered):
        mail_programs.mark_registered(conn, subscriber_id, op.program, now)


class Intake:
    def __init__(
        self,
        store: Store,
        settings: MailSettings,
        *,
        imap_password: str,
        smtp_password: str | None,
        hmac_key: bytes,
        signing_key: Ed25519PrivateKey,
        tls: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.settings = settings
        self._imap_password = imap_password
        self._smtp_password = smtp_password
        self._hmac_key = hmac_key
        self._signing_key = signing_key
        self._tls = tls
        self._clock = clock
        self.idling = asyncio.Event()
        """Set while a connection waits in IDLE (tests wait for it before delivering)."""

    def _new_code(self) -> str:
        return f"{secrets.randbelow(1_000_000):06d}"

    def _new_token(self) -> str:
        return secrets.token_urlsafe(24)

    async def _connect(self) -> aioimaplib.IMAP4:
        s = self.settings
        client: aioimaplib.IMAP4
        if s.imap_security == "tls":
            client = aioimaplib.IMAP4_SSL(
                host=s.imap_host,
                port=s.imap_port,
                timeout=s.timeout_seconds,
                ssl_context=self._tls or ssl.create_default_context(),
            )
        else:
            client = aioimaplib.IMAP4(host=s.imap_host, port=s.imap_port, timeout=s.timeout_seconds)
        await client.wait_hello_from_server()
        response = await client.login(s.imap_username, self._imap_password)
        if response.result != "OK":
            raise ImapError("the mailbox refused the login")
        response = await client.select(s.imap_mailbox)
        if response.result != "OK":
            raise ImapError(f"the mailbox {s.imap_mailbox!r} cannot be selected")
        return client

    async def poll_once(self) -> dict[str, int]:
        """Handle every mail in the mailbox; returns counts per event."""
        client = await self._connect()
        try:
            return await self._process(client)
        finally:
            with contextlib.suppress(aioimaplib.Abort, OSError, TimeoutError):
                await client.logout()

    async def watch(self, stopping: asyncio.Event) -> None:
        """Handle the mailbox until STOPPING: in IDLE when the server offers it (a new mail at
        once; the mailbox is also read again every poll_seconds as a safety net), else by
        polling every poll_seconds. A failure (server down, login refused) is logged and
        retried after poll_seconds; nothing is lost, the mails stay in the mailbox."""
        while not stopping.is_set():
            try:
                await self._session(stopping)
            except (ImapError, aioimaplib.Abort, OSError, TimeoutError) as exc:
                log.warning("mail.intake.failed", error=type(exc).__name__)
            self.idling.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self.settings.poll_seconds)

    async def _session(self, stopping: asyncio.Event) -> None:
        """One connection: handle what is there, then (with IDLE) wait for the server's push
        and handle again, until STOPPING or a failure. Returns at once without IDLE."""
        client = await self._connect()
        try:
            await self._process(client)
            if not (self.settings.idle and client.has_capability("IDLE")):
                return
            renew = min(self.settings.poll_seconds, IDLE_RENEW_SECONDS)
            while not stopping.is_set():
                idle = await client.idle_start(timeout=renew)
                self.idling.set()
                push = asyncio.ensure_future(client.wait_server_push(renew + 5))
                stop = asyncio.ensure_future(stopping.wait())
                try:
                    await asyncio.wait({push, stop}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for task in (push, stop):
                        task.cancel()
                    self.idling.clear()
                    client.idle_done()
                    await asyncio.wait_for(idle, self.settings.timeout_seconds)
                if not stopping.is_set():
                    await self._process(client)
        finally:
            with contextlib.suppress(aioimaplib.Abort, OSError, TimeoutError):
                await client.logout()

    async def _process(self, client: aioimaplib.IMAP4) -> dict[str, int]:
        counts: dict[str, int] = {}
        response = await client.uid_search("ALL", charset=None)
        if response.result != "OK":
            raise ImapError("SEARCH failed")
        uids = [u for line in response.lines[:1] for u in line.decode().split() if u.isdigit()]
        for uid in uids:
            raw = await self._fetch(client, uid)
            if raw is None:
                continue
            work = functools.partial(
                handle,
                raw=raw,
                settings=self.settings,
                now=int(self._clock()),
                hmac_key=self._hmac_key,
                signing_key=self._signing_key,
                new_code=self._new_code,
                new_token=self._new_token,
            )
            handled = await self.store.write(work)
            counts[handled.event] = counts.get(handled.event, 0) + 1
            if handled.replies and handled.sender:
                await self._reply(handled)
            await client.uid("store", uid, "+FLAGS.SILENT", r"(\Deleted)")
        if uids:
            await client.expunge()
        if counts:
            log.info("mail.intake.polled", **counts)
        return counts

    async def _fetch(self, client: aioimaplib.IMAP4, uid: str) -> bytes | None:
        response = await client.uid("fetch", uid, "(BODY.PEEK[])")
        if response.result != "OK":
            return None
        # aioimaplib: [b'N FETCH (UID u BODY[] {size}', bytearray(literal), b')', b'...OK']
        for line in response.lines:
            if isinstance(line, bytearray):
                return bytes(line)
        return None

    async def _reply(self, handled: Handled) -> None:
        assert handled.sender is not None
        async with SmtpSession(self.settings, self._smtp_password, self._tls) as session:
            for reply in handled.replies:
                try:
                    mime = message.build(
                        sender=self.settings.from_address,
                        to=handled.sender,
                        subject=reply.subject,
                        body=reply.body,
                        message_id=message.new_message_id(self.settings.message_id_domain),
                        encoding=self.settings.encoding,
                        in_reply_to=handled.in_reply_to,
                    )
                except ValueError:
                    mime = message.build(
                        sender=self.settings.from_address,
                        to=handled.sender,
                        subject=reply.subject,
                        body=reply.body,
                        message_id=message.new_message_id(self.settings.message_id_domain),
                        encoding="utf-8",
                        in_reply_to=handled.in_reply_to,
                    )
                outcome = await session.send(
                    message.normalize_address(self.settings.from_address)
                    or self.settings.from_address,
                    handled.sender,
                    mime.as_bytes(),
                )
                if outcome is not Outcome.SENT:
                    log.warning("mail.reply.not_sent", outcome=outcome.value)

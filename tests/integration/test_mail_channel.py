"""The mail channel end to end against real servers: dovecot (IMAPS) as the registration
mailbox, aiosmtpd as the city's relay (K9, K2, S8).

A guardian registers by 空メール, confirms with the code, answers one question at a time,
receives an alert exactly once (also after a relay timeout after DATA, and after the sender
process is SIGKILLed while the relay holds the message), and stops through List-Unsubscribe.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email.message
import io
import os
import re
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path

import keyring
import pytest
from aiohttp import web

from kairand import doctor
from kairand.config import Config, MailSection
from kairand.conversation.survey import default_survey
from kairand.keys import secrets
from kairand.keys.backends import SERVICE
from kairand.logs import MAIL_ADDRESS_RE, setup_logging
from kairand.mail.component import mail_component
from kairand.mail.intake import Intake
from kairand.mail.sender import Alert, MailSender
from kairand.retention.receipts import subject_hmac
from kairand.runtime import CONFIG, STOPPING, STORE, TASKS, TaskGroup
from kairand.store import mail as mail_store
from kairand.store import receipts
from kairand.store.database import Store
from tests.support.mail_servers import USER, Dovecot, Relay, client_tls, dovecot, relay
from tests.support.mail_settings import AUTHSERV, REGISTRATION, settings_for
from tests.support.mail_settings import dsn as sample_dsn
from tests.support.ports import free_port

GUARDIAN = "hogosha.taro@example.net"
REPO = Path(__file__).resolve().parents[2]


def resident_mail(
    sender: str, subject: str = "", body: str = "", *, auth: str = "pass", in_reply_to: str = ""
) -> bytes:
    """A mail as the city's mail server stores it: with its Authentication-Results."""
    msg = email.message.EmailMessage()
    msg["Authentication-Results"] = (
        f"{AUTHSERV}; spf={auth} smtp.mailfrom={sender.split('@')[1]}; dmarc={auth}"
    )
    msg["From"] = sender
    msg["To"] = REGISTRATION
    msg["Subject"] = subject
    msg["Date"] = formatdate()
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@example.net>"
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    msg.set_content(body or "\n")
    return msg.as_bytes()


@pytest.fixture
def mailbox(short_tmp: Path) -> Iterator[Dovecot]:
    with dovecot(short_tmp / "dovecot") as server:
        yield server


@pytest.fixture
def smtp_relay() -> Iterator[Relay]:
    with relay() as server:
        yield server


@pytest.fixture
def log_text() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    setup_logging("debug", stream=stream, with_time=False)
    yield stream
    setup_logging("info")


class Bed:
    def __init__(self, store: Store, mailbox: Dovecot, smtp_relay: Relay) -> None:
        self.store = store
        self.mailbox = mailbox
        self.relay = smtp_relay
        self.tls = client_tls(mailbox.cert)
        self.settings = settings_for(smtp_relay.port, mailbox.port)
        self.hmac_key = secrets.receipt_hmac_key()
        self.signing_key = secrets.signing_key()
        self.intake = Intake(
            store,
            self.settings,
            imap_password="imap-test-password",
            smtp_password=None,
            hmac_key=self.hmac_key,
            signing_key=self.signing_key,
            tls=self.tls,
        )
        self.sender = MailSender(store, self.settings, None)

    async def deliver(self, raw: bytes) -> None:
        await asyncio.to_thread(self.mailbox.append, raw)

    async def exchange(self, raw: bytes, replies: int = 1) -> list[email.message.Message]:
        """Deliver RAW to the mailbox, poll once, return the replies the relay received."""
        await self.deliver(raw)
        await self.intake.poll_once()
        return await asyncio.to_thread(self.relay.wait_for, replies, 10.0)

    async def register(self, address: str, answers: list[str]) -> None:
        (confirm,) = await self.exchange(resident_mail(address))
        code = re.search(r"\d{6}", str(confirm["Subject"]))
        assert code is not None
        (question,) = await self.exchange(
            resident_mail(
                address, f"Re: {confirm['Subject']}", "", in_reply_to=confirm["Message-ID"]
            )
        )
        for answer in answers:
            (question,) = await self.exchange(
                resident_mail(address, f"Re: {question['Subject']}", answer)
            )
        assert "登録完了" in str(question["Subject"])


@pytest.fixture
def bed(store: Store, mailbox: Dovecot, smtp_relay: Relay) -> Bed:
    """Built outside the event loop: reading the keyring is file I/O."""
    return Bed(store, mailbox, smtp_relay)


def body_of(msg: email.message.Message) -> str:
    assert isinstance(msg, email.message.EmailMessage)
    content = msg.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")


ANSWERS = ["1985", "2", "3", "1 4"]  # birth year, gender, area, topics


@pytest.mark.req("K9")
@pytest.mark.req("S8")
async def test_register_by_empty_mail_receive_once_and_stop(
    store: Store, bed: Bed, mailbox: Dovecot, smtp_relay: Relay, log_text: io.StringIO
) -> None:
    assert [q.kind for q in default_survey().questions] == ["year", "choice", "choice", "multi"]

    # 空メール: the reply carries the code and the purpose notice, in ISO-2022-JP.
    (confirm,) = await bed.exchange(resident_mail(GUARDIAN))
    assert confirm["To"] == GUARDIAN
    assert confirm.get_content_charset() == "iso-2022-jp"
    assert default_survey().purpose_notice in body_of(confirm)
    code = re.search(r"\d{6}", str(confirm["Subject"]))
    assert code is not None
    assert (await store.read(mail_store.load, GUARDIAN)).stage == "confirming"  # type: ignore[union-attr]

    # Replying (the code is in the subject) confirms and asks the first question.
    (q1,) = await bed.exchange(resident_mail(GUARDIAN, f"Re: {confirm['Subject']}"))
    assert "質問 1/4" in str(q1["Subject"])
    assert "生まれた年" in body_of(q1)
    # A wrong answer repeats the question with the reason; nothing is stored for it.
    (again,) = await bed.exchange(resident_mail(GUARDIAN, "Re: q", "1800"))
    assert "1920年から2025年" in body_of(again)
    question = again
    for answer in ANSWERS:
        (question,) = await bed.exchange(
            resident_mail(GUARDIAN, f"Re: {question['Subject']}", answer)
        )
    assert "登録完了" in str(question["Subject"])
    row = await store.read(mail_store.load, GUARDIAN)
    assert row is not None and row.stage == "registered"
    assert row.answers["birth_year"] == ("1985",)
    assert len(row.answers["topics"]) == 2
    # Every processed mail was deleted from the mailbox.
    assert await asyncio.to_thread(mailbox.count) == 0

    # One alert, exactly once: a second run of the same delivery sends nothing.
    assert await bed.sender.recover() == 0
    ids = [i for i, _ in await store.read(mail_store.recipients)]
    assert len(ids) == 1
    alert = Alert(7, "【防災】避難所開設のお知らせ", "本町小学校を避難所として開設しました。")
    assert await bed.sender.send_alert(alert, ids) == {"sent": 1}
    (received,) = smtp_relay.take()
    assert received["To"] == GUARDIAN
    assert received["Subject"] == alert.subject
    assert "本町小学校" in body_of(received)
    assert await bed.sender.send_alert(alert, ids) == {"skipped": 1}
    assert smtp_relay.take() == []
    states = await store.read(mail_store.send_states, 7)
    assert states == {"sent": 1}

    # One-step stop through the List-Unsubscribe mailto (the token authenticates it).
    target = re.search(r"<mailto:([^?]+)\?subject=([^>]+)>", str(received["List-Unsubscribe"]))
    assert target is not None and target.group(1) == REGISTRATION
    (stopped,) = await bed.exchange(resident_mail(GUARDIAN, target.group(2)))
    assert "配信停止" in str(stopped["Subject"])
    assert await store.read(mail_store.load, GUARDIAN) is None
    found = await store.read(receipts.for_subject, subject_hmac(bed.hmac_key, GUARDIAN))
    assert [r.reason for r in found] == ["request"]
    assert found[0].deleted == {"mail_subscriber": 1, "answers": 5}
    assert GUARDIAN not in repr(found[0])
    # The next delivery reaches nobody.
    assert await store.read(mail_store.recipients) == []

    # No address in any log line (S8).
    logs = log_text.getvalue()
    assert "mail.intake.polled" in logs
    assert GUARDIAN not in logs and "hogosha" not in logs
    assert MAIL_ADDRESS_RE.search(logs) is None


@pytest.mark.req("K9")
async def test_forged_and_unauthenticated_senders_cannot_register(
    store: Store, bed: Bed, mailbox: Dovecot, smtp_relay: Relay
) -> None:
    victim = "victim@example.org"
    # A mail that failed SPF/DMARC at the relay: refused, no reply (no backscatter).
    await bed.deliver(resident_mail(victim, auth="fail"))
    assert await bed.intake.poll_once() == {"refused": 1}
    assert await store.read(mail_store.load, victim) is None
    # A forger who passes the relay's checks for their own domain but writes From: victim is
    # caught by DMARC; one who gets a mail through anyway only triggers a code to the victim.
    await bed.deliver(resident_mail(victim))
    await bed.intake.poll_once()
    (to_victim,) = smtp_relay.take()
    assert to_victim["To"] == victim
    for guess in ("000000", "123456", "999999", "111111", "222222"):
        await bed.deliver(resident_mail(victim, "Re: 登録", guess))
    counts = await bed.intake.poll_once()
    assert counts == {"code_wrong": 4, "abandoned": 1}
    assert await store.read(mail_store.load, victim) is None
    smtp_relay.take()
    assert await asyncio.to_thread(mailbox.count) == 0


@pytest.mark.req("K9")
async def test_a_mail_seen_twice_is_handled_once(
    store: Store, bed: Bed, mailbox: Dovecot, smtp_relay: Relay
) -> None:
    """A crash between the store transaction and the IMAP delete leaves the mail in the
    mailbox: the next poll deletes it without handling it again."""
    raw = resident_mail(GUARDIAN)
    await bed.deliver(raw)
    await bed.deliver(raw)  # the same mail (same Message-ID) still in the mailbox
    assert await bed.intake.poll_once() == {"started": 1, "duplicate": 1}
    assert len(smtp_relay.take()) == 1


async def _registered(bed: Bed, address: str) -> int:
    await bed.register(address, ANSWERS)
    row = await bed.store.read(mail_store.load, address)
    assert row is not None
    return row.id


@pytest.mark.req("K9")
async def test_relay_timeout_after_data_is_unconfirmed_and_never_resent(
    store: Store, bed: Bed, mailbox: Dovecot, smtp_relay: Relay
) -> None:
    subscriber = await _registered(bed, GUARDIAN)
    hold = threading.Event()
    smtp_relay.hold = hold
    try:
        sender = MailSender(store, dataclasses.replace(bed.settings, timeout_seconds=0.5), None)
        result = await sender.send_alert(Alert(9, "件名", "本文"), [subscriber])
    finally:
        hold.set()
    assert result == {"unconfirmed": 1}
    assert len(smtp_relay.take()) == 1  # the relay did get it
    smtp_relay.hold = None
    assert await bed.sender.send_alert(Alert(9, "件名", "本文"), [subscriber]) == {"skipped": 1}
    assert smtp_relay.take() == []
    assert (await store.read(mail_store.counters))["sends_unconfirmed"] == 1


@pytest.mark.req("K9")
async def test_failure_before_data_retries_with_the_same_message_id(
    store: Store, bed: Bed, mailbox: Dovecot, smtp_relay: Relay
) -> None:
    subscriber = await _registered(bed, GUARDIAN)
    down = dataclasses.replace(bed.settings, smtp_port=free_port())  # nothing listens there
    assert await MailSender(store, down, None).send_alert(
        Alert(3, "件名", "本文"), [subscriber]
    ) == {"retry": 1}
    assert await bed.sender.send_alert(Alert(3, "件名", "本文"), [subscriber]) == {"sent": 1}
    (received,) = smtp_relay.take()
    stored = await store.read(
        lambda conn: conn.execute(
            "SELECT message_id FROM mail_sends WHERE delivery_id = 3"
        ).fetchone()[0]
    )
    assert received["Message-ID"] == stored


@pytest.mark.req("K9")
async def test_bounces_stop_a_dead_address_after_the_threshold(
    store: Store, bed: Bed, mailbox: Dovecot, smtp_relay: Relay
) -> None:
    await _registered(bed, GUARDIAN)

    def dsn(recipient: str, status: str) -> bytes:
        return f"Message-ID: <{uuid.uuid4().hex}@mx.city.example.jp>\r\n".encode() + sample_dsn(
            recipient, status
        )

    await bed.deliver(dsn(GUARDIAN, "5.1.1"))
    assert await bed.intake.poll_once() == {"bounce": 1}
    assert (await store.read(mail_store.load, GUARDIAN)).stage == "registered"  # type: ignore[union-attr]
    await bed.deliver(dsn(GUARDIAN, "4.2.2"))  # transient: not counted
    await bed.deliver(dsn(GUARDIAN, "5.1.1"))
    assert await bed.intake.poll_once() == {"bounce": 2}
    row = await store.read(mail_store.load, GUARDIAN)
    assert row is not None and row.stage == "bounced" and row.bounces == 2
    assert await store.read(mail_store.recipients) == []
    counters = await store.read(mail_store.counters)
    assert counters["bounces"] == 2 and counters["bounced_stopped"] == 1
    assert smtp_relay.take() == []  # no reply to a DSN


@pytest.mark.req("K9")
@pytest.mark.allow_blocking
async def test_sender_killed_while_the_relay_holds_the_message_sends_once(
    dev_setup: Path, store: Store, bed: Bed, mailbox: Dovecot, smtp_relay: Relay
) -> None:
    """SIGKILL of the sending process after the Message-ID was stored and the relay received
    the message, before its 250: after restart the send is 'unconfirmed', never resent."""
    await _registered(bed, GUARDIAN)
    hold = threading.Event()
    smtp_relay.hold = hold
    env = {**os.environ, "PYTHONPATH": f"{REPO}/daemon:{REPO}"}
    child = subprocess.Popen(  # noqa: ASYNC220 - killed below; waited with a deadline
        [
            sys.executable,
            "-m",
            "tests.support.mail_child",
            str(dev_setup),
            str(smtp_relay.port),
            "11",
        ],
        cwd=REPO,
        env=env,
        start_new_session=True,
    )
    try:
        got = await asyncio.to_thread(smtp_relay.received.wait, 60)
        assert got, "the child never reached the relay"
        row = await store.read(
            lambda conn: conn.execute(
                "SELECT state FROM mail_sends WHERE delivery_id = 11"
            ).fetchone()
        )
        assert row == ("pending",)  # stored before the send
        os.killpg(child.pid, signal.SIGKILL)
        await asyncio.to_thread(child.wait, 10)
    finally:
        hold.set()
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait(10)
    assert child.returncode == -signal.SIGKILL
    assert len(smtp_relay.take()) == 1
    smtp_relay.hold = None
    # Restart: the left-over 'pending' becomes 'unconfirmed'; the delivery is not resent.
    assert await bed.sender.recover() == 1
    ids = [i for i, _ in await store.read(mail_store.recipients)]
    assert await bed.sender.send_alert(Alert(11, "【防災】お知らせ", "本文です。"), ids) == {
        "skipped": 1
    }
    assert smtp_relay.take() == []
    assert await store.read(mail_store.send_states, 11) == {"unconfirmed": 1}


@pytest.mark.req("K9")
async def test_daemon_component_recovers_then_polls_the_mailbox(
    config: Config, store: Store, bed: Bed, mailbox: Dovecot, smtp_relay: Relay
) -> None:
    """The component as the daemon runs it: keyring passwords, the city's CA, start-up
    recovery of 'pending' sends, then periodic polling (answered within one poll interval)."""
    await asyncio.to_thread(
        keyring.set_password, SERVICE, secrets.MAIL_IMAP_PASSWORD, "imap-test-password"
    )
    mail = {
        "enabled": True,
        "from_address": "〇〇市 防災メール <alert@city.example.jp>",
        "registration_address": REGISTRATION,
        "authserv_id": AUTHSERV,
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp_relay.port,
        "smtp_security": "none",
        "imap_host": "localhost",
        "imap_port": mailbox.port,
        "imap_username": USER,
        "poll_seconds": 0.2,
        "ca_file": str(mailbox.cert),
    }
    enabled = config.model_copy(update={"mail": MailSection.model_validate(mail)})
    await store.write(mail_store.claim_send, 5, 1, "<left@kairan.invalid>", 1)
    app = web.Application()
    app[CONFIG] = enabled
    app[STORE] = store
    app[STOPPING] = asyncio.Event()
    app[TASKS] = TaskGroup()
    component = mail_component(app)
    await component.__anext__()
    try:
        assert await store.read(mail_store.send_states, 5) == {"unconfirmed": 1}
        await bed.deliver(resident_mail(GUARDIAN))
        (confirm,) = await asyncio.to_thread(smtp_relay.wait_for, 1, 15.0)
        assert "確認コード" in str(confirm["Subject"])
    finally:
        app[STOPPING].set()
        with contextlib.suppress(StopAsyncIteration):
            await component.__anext__()
        await app[TASKS].close()


def _enabled(config: Config, mailbox: Dovecot, smtp_port: int) -> Config:
    mail = {
        "enabled": True,
        "from_address": "〇〇市 防災メール <alert@city.example.jp>",
        "registration_address": REGISTRATION,
        "authserv_id": AUTHSERV,
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp_port,
        "smtp_security": "none",
        "imap_host": "localhost",
        "imap_port": mailbox.port,
        "imap_username": USER,
        "ca_file": str(mailbox.cert),
    }
    return config.model_copy(update={"mail": MailSection.model_validate(mail)})


@pytest.mark.req("K9")
def test_doctor_checks_both_mail_connections(
    dev_setup: Path, config: Config, mailbox: Dovecot, smtp_relay: Relay
) -> None:
    keyring.set_password(SERVICE, secrets.MAIL_IMAP_PASSWORD, "imap-test-password")
    ctx = doctor.Context(dev_setup, config=config)
    assert doctor.check_mail(ctx).status == doctor.SKIP  # [mail] not enabled
    ctx.config = _enabled(config, mailbox, smtp_relay.port)
    result = doctor.check_mail(ctx)
    assert result.status == doctor.OK, result.en
    # Relay down: the finding names SMTP (and the host), not the mailbox.
    ctx.config = _enabled(config, mailbox, free_port())
    result = doctor.check_mail(ctx)
    assert result.status == doctor.FAIL
    assert "SMTP" in result.ja and "IMAP" not in result.ja
    # Wrong mailbox password: IMAP fails.
    keyring.set_password(SERVICE, secrets.MAIL_IMAP_PASSWORD, "wrong")
    ctx.config = _enabled(config, mailbox, smtp_relay.port)
    result = doctor.check_mail(ctx)
    assert result.status == doctor.FAIL and "IMAP" in result.ja and "refused" in result.en
    assert "@" not in result.en.replace(str(mailbox.cert), "")


def _intake(bed: Bed, store: Store, **overrides: object) -> Intake:
    return Intake(
        store,
        dataclasses.replace(bed.settings, **overrides),  # type: ignore[arg-type]
        imap_password="imap-test-password",
        smtp_password=None,
        hmac_key=bed.hmac_key,
        signing_key=bed.signing_key,
        tls=bed.tls,
    )


@pytest.mark.req("K9")
async def test_imap_idle_handles_a_new_mail_as_soon_as_it_arrives(
    store: Store, bed: Bed, mailbox: Dovecot, smtp_relay: Relay
) -> None:
    """With IDLE (dovecot offers it) a mail delivered while the connection waits is answered
    at once, although the next read by polling would be 5 minutes away."""
    intake = _intake(bed, store, poll_seconds=300.0)
    stopping = asyncio.Event()
    task = asyncio.create_task(intake.watch(stopping))
    try:
        await asyncio.wait_for(intake.idling.wait(), 15)
        await bed.deliver(resident_mail(GUARDIAN))
        (confirm,) = await asyncio.to_thread(smtp_relay.wait_for, 1, 15.0)
        assert "確認コード" in str(confirm["Subject"])
        # A second mail in the same IDLE session (IDLE is renewed after each read).
        await asyncio.wait_for(intake.idling.wait(), 15)
        await bed.deliver(resident_mail(GUARDIAN, "停止"))
        (stopped,) = await asyncio.to_thread(smtp_relay.wait_for, 1, 15.0)
        assert stopped["To"] == GUARDIAN
    finally:
        stopping.set()
        await asyncio.wait_for(task, 15)
    assert await asyncio.to_thread(mailbox.count) == 0  # processed mails are deleted


@pytest.mark.req("K9")
async def test_without_idle_the_mailbox_is_polled(
    store: Store, bed: Bed, mailbox: Dovecot, smtp_relay: Relay
) -> None:
    """The fallback (a server without IDLE, or mail.idle = false): one read per poll_seconds;
    the connection is never left in IDLE."""
    intake = _intake(bed, store, poll_seconds=0.2, idle=False)
    stopping = asyncio.Event()
    idled = False

    async def spy() -> None:
        nonlocal idled
        await intake.idling.wait()
        idled = True

    watcher = asyncio.create_task(spy())
    task = asyncio.create_task(intake.watch(stopping))
    try:
        await bed.deliver(resident_mail(GUARDIAN))
        (confirm,) = await asyncio.to_thread(smtp_relay.wait_for, 1, 15.0)
        assert "確認コード" in str(confirm["Subject"])
    finally:
        stopping.set()
        await asyncio.wait_for(task, 15)
        watcher.cancel()
    assert not idled

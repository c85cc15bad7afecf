"""Deliveries on both channels (K9, K2, S8): an approved delivery to a segment
reaches its LINE residents through the simulator AND its mail subscribers through the relay,
each mail subscriber exactly once (also across a restart and a SIGKILL mid-send); staff see
counts per channel, never an address.

Real parts: the LINE simulator, the delivery sender, the daemon's mail component with
dovecot (IMAPS) as the registration mailbox and aiosmtpd as the city's relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.message
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import keyring
import pytest
from aiohttp import web

from kairand.api import wire
from kairand.config import Config, MailSection
from kairand.conversation.survey import default_survey
from kairand.delivery import audience, service
from kairand.delivery.errors import NoRecipients
from kairand.delivery.model import DeliveryContent
from kairand.delivery.sender import Sender
from kairand.keys import secrets
from kairand.keys.backends import SERVICE
from kairand.mail.component import mail_component
from kairand.mail.deliveries import MailDeliveries
from kairand.mail.sender import MailSender
from kairand.runtime import CONFIG, STOPPING, STORE, TASKS, TaskGroup
from kairand.segments.model import SegmentFilter
from kairand.store import mail as mail_store
from kairand.store.database import Store
from tests.support.delivery_harness import IN_SEGMENT, approved, fast_config, populate, run_sender
from tests.support.delivery_harness import simulator as line_simulator
from tests.support.mail_servers import USER, Dovecot, Relay, dovecot, relay
from tests.support.mail_settings import AUTHSERV, REGISTRATION, settings_for

REPO = Path(__file__).resolve().parents[2]
ASAHI = "asahi.guardian@example.net"
MINATO = "minato.guardian@example.net"
WAKABA = "wakaba.guardian@example.net"
BOUNCED = "bounced.guardian@example.net"
ALERT = "大雨警報が発表されました。\n旭地区に避難所を開設しました。"


@pytest.fixture
def mailbox(short_tmp: Path) -> Iterator[Dovecot]:
    with dovecot(short_tmp / "dovecot") as server:
        yield server


@pytest.fixture
def smtp_relay() -> Iterator[Relay]:
    with relay() as server:
        yield server


def subscribe(store: Store, address: str, area: str, stage: str = "registered") -> int:
    """A mail subscriber who finished registration (the dialogue is tested in
    test_mail_channel.py) with the area ANSWER."""
    return store.write_sync(
        lambda conn: mail_store.save(
            conn,
            address,
            stage=stage,
            stop_token=f"stop-{area}-{stage}",
            confirm_code=None,
            attempts=0,
            question=0,
            answers={"area": (area,), "topics": ("bousai",)},
            now=int(time.time()),
        )
    )


def enabled(config: Config, mailbox: Dovecot, smtp_port: int) -> Config:
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
        "send_poll_seconds": 0.05,
    }
    return config.model_copy(update={"mail": MailSection.model_validate(mail)})


@contextlib.asynccontextmanager
async def mail_running(config: Config, store: Store) -> AsyncIterator[web.Application]:
    """The daemon's mail component (recovery, mailbox polling, the deliveries worker)."""
    app = web.Application()
    app[CONFIG] = config
    app[STORE] = store
    app[STOPPING] = asyncio.Event()
    app[TASKS] = TaskGroup()
    component = mail_component(app)
    await component.__anext__()
    try:
        yield app
    finally:
        app[STOPPING].set()
        with contextlib.suppress(StopAsyncIteration):
            await component.__anext__()
        await app[TASKS].close()


async def wait_mail(store: Store, delivery_id: int, settled: int, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        counts = await store.read(mail_store.delivery_mail, delivery_id)
        if counts.sent + counts.failed + counts.unconfirmed >= settled:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the mail worker did not settle the delivery's mail in time")


@pytest.mark.req("K9")
@pytest.mark.req("K2")
async def test_approved_delivery_reaches_line_and_mail_once_with_counts_per_channel(
    config: Config, store: Store, mailbox: Dovecot, smtp_relay: Relay
) -> None:
    expected_line = populate(store, 30)
    subscribe(store, ASAHI, "asahi")
    subscribe(store, WAKABA, "wakaba")  # outside the segment
    subscribe(store, BOUNCED, "minato", stage="bounced")  # stopped by bounces
    await asyncio.to_thread(
        keyring.set_password, SERVICE, secrets.MAIL_IMAP_PASSWORD, "imap-test-password"
    )
    # The audience staff see before composing: per channel, counts only.
    counts = await audience.channel_counts(store, IN_SEGMENT, default_survey())
    assert (counts.line, counts.mail) == (len(expected_line), 1)

    did = await approved(store, IN_SEGMENT, messages=(ALERT,), urgent=True)
    async with (
        line_simulator(30) as line,
        mail_running(enabled(config, mailbox, smtp_relay.port), store),
    ):
        sender = Sender(store, line.api, fast_config())
        await run_sender(sender, store=store, delivery_ids=(did,))
        await wait_mail(store, did, 1)
        received = line.sim.received()
    # LINE: every resident of the segment exactly once.
    assert set(received) == expected_line
    assert all(n == 1 for n in received.values())
    # Mail: exactly one message, to the one subscriber in the segment.
    (mail,) = await asyncio.to_thread(smtp_relay.wait_for, 1, 5.0)
    assert mail["To"] == ASAHI
    assert str(mail["Subject"]) == "【緊急】大雨警報が発表されました。"
    assert isinstance(mail, email.message.EmailMessage)
    assert "旭地区に避難所を開設しました。" in mail.get_content()
    assert mail["List-Unsubscribe"]
    # Staff see the delivery's counts on both channels, never an address.
    detail = wire.detail_of(await service.get(store, did), threshold=0)
    assert detail.recipient_count == len(expected_line) + 1
    assert detail.sent_count == len(expected_line) + 1
    assert detail.mail is not None
    assert (detail.mail.recipients, detail.mail.sent, detail.mail.unconfirmed) == (1, 1, 0)
    page = detail.model_dump_json()
    assert all(a not in page for a in (ASAHI, WAKABA, BOUNCED))
    # A restart of the mail component: nothing is sent a second time.
    async with mail_running(enabled(config, mailbox, smtp_relay.port), store) as app:
        sender_again = MailSender(store, settings_for(smtp_relay.port, mailbox.port), None)
        assert await MailDeliveries(store, sender_again).step() is False
        assert app[TASKS] is not None
    assert smtp_relay.take() == []
    assert await store.read(mail_store.send_states, did) == {"sent": 1}


@pytest.mark.req("K9")
async def test_a_segment_reached_only_by_mail_is_not_refused(store: Store) -> None:
    """Audience checks treat both channels alike: a segment with no LINE resident but a mail
    subscriber is a valid delivery (a delivery to nobody at all is still refused)."""
    subscribe(store, WAKABA, "wakaba")
    only_mail = SegmentFilter.model_validate(
        {"conditions": [{"question": "area", "any_of": ["wakaba"]}]}
    )
    did = await service.create_draft(
        store, "tanaka", DeliveryContent(title="t", messages=("本文",), segment=only_mail)
    )
    await service.submit(store, did, "tanaka")
    nobody = SegmentFilter.model_validate(
        {"conditions": [{"question": "area", "any_of": ["minato"]}]}
    )
    refused = await service.create_draft(
        store, "tanaka", DeliveryContent(title="t", messages=("本文",), segment=nobody)
    )
    with pytest.raises(NoRecipients):
        await service.submit(store, refused, "tanaka")


@pytest.mark.req("K9")
async def test_cancelled_delivery_sends_no_more_mail(
    config: Config, store: Store, mailbox: Dovecot, smtp_relay: Relay
) -> None:
    populate(store, 6)
    subscribe(store, ASAHI, "asahi")
    did = await approved(store, IN_SEGMENT)
    async with line_simulator(6) as line:
        await run_sender(Sender(store, line.api, fast_config()), store=store, delivery_ids=(did,))
    assert (await store.read(mail_store.delivery_mail, did)).recipients == 1
    await store.write(
        lambda conn: conn.execute("UPDATE deliveries SET status = 'cancelled' WHERE id = ?", (did,))
    )
    worker = MailDeliveries(
        store, MailSender(store, settings_for(smtp_relay.port, mailbox.port), None)
    )
    assert await worker.step() is False
    assert smtp_relay.take() == []


@pytest.mark.req("K9")
@pytest.mark.allow_blocking
async def test_mail_worker_killed_mid_send_sends_each_subscriber_once(
    dev_setup: Path, store: Store, mailbox: Dovecot, smtp_relay: Relay
) -> None:
    """The daemon's mail worker in its own process is SIGKILLed while the relay holds the
    first subscriber's message (before its 250). After the restart that send is
    'unconfirmed' (never resent) and the other subscriber gets the alert: one mail each."""
    populate(store, 6)
    subscribe(store, ASAHI, "asahi")
    subscribe(store, MINATO, "minato")
    did = await approved(store, IN_SEGMENT, messages=(ALERT,))
    async with line_simulator(6) as line:
        await run_sender(Sender(store, line.api, fast_config()), store=store, delivery_ids=(did,))
    assert (await store.read(mail_store.delivery_mail, did)).recipients == 2
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
            "deliveries",
        ],
        cwd=REPO,
        env=env,
        start_new_session=True,
    )
    try:
        got = await asyncio.to_thread(smtp_relay.received.wait, 60)
        assert got, "the child never reached the relay"
        os.killpg(child.pid, signal.SIGKILL)
        await asyncio.to_thread(child.wait, 10)
    finally:
        hold.set()
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait(10)
    assert child.returncode == -signal.SIGKILL
    (first,) = smtp_relay.take()
    smtp_relay.hold = None
    # Restart: recovery, then the worker as the daemon runs it.
    sender = MailSender(store, settings_for(smtp_relay.port, mailbox.port), None)
    assert await sender.recover() == 1
    worker = MailDeliveries(store, sender)
    assert await worker.step() is True
    assert await worker.step() is False
    (second,) = smtp_relay.take()
    assert {first["To"], second["To"]} == {ASAHI, MINATO}
    assert await store.read(mail_store.send_states, did) == {"unconfirmed": 1, "sent": 1}
    detail = wire.detail_of(await service.get(store, did), threshold=0)
    assert detail.mail is not None
    assert (detail.mail.sent, detail.mail.unconfirmed) == (1, 1)

"""Mail subscribers in programs (K1, K2, K9): a guardian registers by 空メール,
joins 子ども安全情報 by mail (purpose notice, consent by number, 中学校区 → 小学校区, the
program's further question), receives the next urgent alert for that district by mail exactly
once (and a guardian of another district does not), changes districts, and leaves the program
while staying registered for the city's mail.

Real parts: dovecot (IMAPS) as the registration mailbox, aiosmtpd as the relay, the LINE
simulator and the delivery sender (which freezes the mail recipients with the LINE batches).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email.message
import io
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
from aiohttp import web

from kairand.api.app import serve
from kairand.api.client import connect
from kairand.config import Config
from kairand.delivery import audience
from kairand.delivery.sender import Sender
from kairand.keys import secrets
from kairand.keys.backends import SERVICE
from kairand.logs import MAIL_ADDRESS_RE, setup_logging
from kairand.mail import expiry as mail_expiry
from kairand.mail import notices
from kairand.mail.component import mail_component
from kairand.mail.deliveries import MailDeliveries
from kairand.mail.sender import MailSender
from kairand.programs import catalogue, consent, expiry, service
from kairand.retention.receipts import subject_hmac
from kairand.retention.rules import (
    Annual,
    RetentionRule,
    RetentionRules,
    boundary_in_year,
    format_deadline_ja,
    notice_time_for,
)
from kairand.runtime import CONFIG, STOPPING, STORE, TASKS, TaskGroup
from kairand.segments.model import SegmentFilter
from kairand.store import audit as audit_store
from kairand.store import mail as mail_store
from kairand.store import mail_programs, receipts, settings
from kairand.store import retention as retention_store
from kairand.store.database import Connection, Store
from kairand.timeutil import JST
from tests.integration.test_mail_channel import Bed, _enabled, body_of, resident_mail
from tests.support.api_helpers import add_staff, header_resolver
from tests.support.delivery_harness import fast_config, run_sender, simulator
from tests.support.mail_servers import Dovecot, Relay, dovecot, relay
from tests.support.mail_settings import settings_for
from tests.support.ports import free_port
from tests.support.programs_support import FILLED, KINDERGARTEN, populate, setup_program

ASAHI = "asahi.oya@example.net"  # 朝日小学校区 (東中学校区): inside たんぽぽこども園's districts
MINATO = "minato.oya@example.net"  # 港小学校区 (西中学校区): outside
ANSWERS = ["1985", "2", "3", "1 4"]  # the city survey
KODOMO = catalogue.CHILD_SAFETY_CODE
REPO = Path(__file__).resolve().parents[2]


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


@pytest.fixture
def bed(store: Store, mailbox: Dovecot, smtp_relay: Relay) -> Bed:
    return Bed(store, mailbox, smtp_relay)


async def say(bed: Bed, address: str, line: str) -> email.message.Message:
    (reply,) = await bed.exchange(resident_mail(address, "Re: 子ども安全情報", line))
    assert reply["To"] == address
    return reply


def numbered(body: str, label: str) -> str:
    """The number the reply BODY gives to LABEL (「2. 西中学校区」 -> "2")."""
    found = re.search(rf"^(\d+)\. {re.escape(label)}$", body, re.MULTILINE)
    assert found is not None, f"{label} is not offered"
    return found.group(1)


async def join(bed: Bed, address: str, junior_high: str, district: str) -> None:
    """Join 子ども安全情報 by mail, choosing DISTRICT of JUNIOR_HIGH, as a 保護者."""
    offer = body_of(await say(bed, address, "子ども安全情報"))
    assert "■利用目的" in offer and "「1」" in offer
    jh = body_of(await say(bed, address, "1"))
    el = body_of(await say(bed, address, numbered(jh, junior_high)))
    assert district in el
    chosen = body_of(await say(bed, address, numbered(el, district)))
    assert f"選択中の学校区：{district}" in chosen
    question = body_of(await say(bed, address, "0"))
    assert "登録の区分" in question
    done = await say(bed, address, numbered(question, "保護者"))
    assert "登録が完了しました" in str(done["Subject"])


async def alert_by_mail(store: Store, bed: Bed, tid: int) -> int:
    """Send the kindergarten's 不審者情報 alert; the LINE sender freezes it, the mail worker
    sends it. Returns the delivery id."""
    sent = await service.send_alert(store, "yamada", tid, "tanpopo", KINDERGARTEN, FILLED)
    async with simulator(40) as line:
        await run_sender(
            Sender(store, line.api, fast_config()), store=store, delivery_ids=(sent.delivery_id,)
        )
    worker = MailDeliveries(store, bed.sender)
    while await worker.step():
        pass
    return sent.delivery_id


@pytest.mark.req("K9")
@pytest.mark.req("K1")
@pytest.mark.req("S8")
async def test_a_mail_guardian_joins_the_program_gets_its_alert_once_and_leaves(
    store: Store, bed: Bed, smtp_relay: Relay, log_text: io.StringIO
) -> None:
    tid = await setup_program(store)
    populate(store, 40)  # LINE guardians too: the alert goes on both channels
    await bed.register(ASAHI, ANSWERS)
    await bed.register(MINATO, ANSWERS)
    # The help mail of a registered subscriber offers the program.
    (help_mail,) = await bed.exchange(resident_mail(ASAHI, "", "ヘルプ"))
    assert "「子ども安全情報」と本文に書いて返信" in body_of(help_mail)

    await join(bed, ASAHI, "東中学校区", "朝日小学校区")
    await join(bed, MINATO, "西中学校区", "港小学校区")
    ids = {a: store.read_sync(mail_store.load, a).id for a in (ASAHI, MINATO)}  # type: ignore[union-attr]
    member = store.read_sync(mail_programs.memberships, ids[ASAHI])[KODOMO]
    assert member.registered and member.answers == {
        "kodomo_district": ("asahi",),
        "kodomo_relation": ("guardian",),
    }

    # Staff see the audience per channel: the mail guardian of the alert's districts counts.
    segment = SegmentFilter.model_validate(
        {
            "program": KODOMO,
            "conditions": [{"question": "kodomo_district", "any_of": list(KINDERGARTEN)}],
        }
    )
    survey = store.read_sync(service.survey_for, KODOMO)
    assert survey is not None
    counts = await audience.channel_counts(store, segment, survey)
    assert counts.mail == 1 and counts.line > 0

    did = await alert_by_mail(store, bed, tid)
    mails = await asyncio.to_thread(smtp_relay.wait_for, 1, 5.0)
    assert [m["To"] for m in mails] == [ASAHI]  # not the guardian of 港小学校区
    assert "【緊急】" in str(mails[0]["Subject"])
    assert FILLED["place"] in body_of(mails[0])
    assert await store.read(mail_store.send_states, did) == {"sent": 1}
    # Exactly once: the worker finds nothing more to send for it.
    assert await MailDeliveries(store, bed.sender).step() is False
    assert smtp_relay.take() == []

    # The guardian leaves the program and stays registered for the city's mail.
    menu = body_of(await say(bed, ASAHI, "子ども安全情報"))
    assert "現在の学校区：朝日小学校区" in menu
    left = await say(
        bed,
        ASAHI,
        numbered(menu, "子ども安全情報の登録をやめる（メール配信の登録はそのまま残ります）"),
    )
    assert "登録を解除しました" in str(left["Subject"])
    assert store.read_sync(mail_programs.memberships, ids[ASAHI]) == {}
    row = store.read_sync(mail_store.load, ASAHI)
    assert row is not None and row.stage == "registered" and row.answers
    found = await store.read(receipts.for_subject, subject_hmac(bed.hmac_key, ASAHI))
    assert [(r.reason, r.deleted) for r in found] == [
        ("request", {"program": KODOMO, "membership": 1, "answers": 2})
    ]

    # The next alert reaches nobody by mail (the other guardian's district is not in it).
    did = await alert_by_mail(store, bed, tid)
    assert await store.read(mail_store.delivery_mail, did) == mail_store.DeliveryMail()
    assert smtp_relay.take() == []
    # No address in any log line of the whole exchange.
    logs = log_text.getvalue()
    assert "mail.intake.polled" in logs  # the exchange was logged (counts only)
    assert ASAHI not in logs and MINATO not in logs
    assert MAIL_ADDRESS_RE.search(logs) is None


@pytest.mark.req("K9")
@pytest.mark.req("K1")
async def test_a_mail_guardian_changes_districts_and_stops_everything(
    store: Store, bed: Bed, smtp_relay: Relay
) -> None:
    await setup_program(store)
    await bed.register(MINATO, ANSWERS)
    await join(bed, MINATO, "西中学校区", "港小学校区")
    subscriber = store.read_sync(mail_store.load, MINATO)
    assert subscriber is not None
    # Change: two districts from two junior-high districts, then 0; the question again.
    menu = body_of(await say(bed, MINATO, "子ども安全情報"))
    jh = body_of(await say(bed, MINATO, numbered(menu, "学校区・回答を変更する")))
    el = body_of(await say(bed, MINATO, numbered(jh, "東中学校区")))
    jh = body_of(
        await say(bed, MINATO, f"{numbered(el, '朝日小学校区')} {numbered(el, '光小学校区')}")
    )
    el = body_of(await say(bed, MINATO, numbered(jh, "北中学校区")))
    wrong = body_of(await say(bed, MINATO, "9"))
    assert "1〜2 の番号" in wrong  # a number outside the list: asked again, nothing lost
    jh = body_of(await say(bed, MINATO, numbered(el, "山手小学校区")))
    assert "選択中の学校区：朝日小学校区、光小学校区、山手小学校区" in jh
    question = body_of(await say(bed, MINATO, "0"))
    await say(bed, MINATO, numbered(question, "地域の方"))
    member = store.read_sync(mail_programs.memberships, subscriber.id)[KODOMO]
    assert member.answers["kodomo_district"] == ("asahi", "hikari", "yamate")
    assert member.answers["kodomo_relation"] == ("neighbour",)
    # 停止 deletes the address with every membership and program answer.
    await say(bed, MINATO, "停止")
    assert store.read_sync(mail_store.load, MINATO) is None
    left = store.read_sync(
        lambda c: c.execute("SELECT count(*) FROM mail_program_answers").fetchone()[0]
    )
    assert left == 0


@pytest.mark.req("K2")
@pytest.mark.req("K9")
async def test_march_expiry_removes_the_mail_guardians_program_registration(
    store: Store, bed: Bed
) -> None:
    await setup_program(store)
    await bed.register(ASAHI, ANSWERS)
    await join(bed, ASAHI, "東中学校区", "朝日小学校区")
    subscriber = store.read_sync(mail_store.load, ASAHI)
    assert subscriber is not None
    boundary = boundary_in_year(Annual(), dt.datetime.now(JST).year + 1)
    store.write_sync(settings.put, f"programs.{KODOMO}.expiry_last_run", boundary - 86400)
    result = await expiry.run_once(
        store, boundary + 60, hmac_key=bed.hmac_key, signing_key=bed.signing_key
    )
    assert result.expired[KODOMO] == 1
    assert store.read_sync(mail_programs.memberships, subscriber.id) == {}
    assert store.read_sync(mail_programs.member_counts, KODOMO) == 0
    # The receipt holds an HMAC of the address, never the address.
    (receipt,) = await store.read(receipts.for_subject, subject_hmac(bed.hmac_key, ASAHI))
    assert receipt.reason == "annual_expiry" and receipt.deleted["program"] == KODOMO
    assert ASAHI not in repr(receipt)
    # The city's mail registration is untouched; a second run removes nothing more.
    after = store.read_sync(mail_store.load, ASAHI)
    assert after is not None and after.stage == "registered"
    again = await expiry.run_once(
        store, boundary + 120, hmac_key=bed.hmac_key, signing_key=bed.signing_key
    )
    assert not again.expired


def member_by_mail(store: Store, address: str, district: str) -> int:
    """A mail subscriber registered in 子ども安全情報 for DISTRICT (the dialogue that gets
    there is tested above)."""

    def tx(conn: Connection) -> int:
        sid = mail_store.save(
            conn, address, stage="registered", stop_token=f"stop-{district}-0123456789abcdef",
            confirm_code=None, attempts=0, question=0, answers={}, now=1,
        )  # fmt: skip
        mail_programs.join(conn, sid, KODOMO, 1, 1)
        mail_programs.set_answer(conn, sid, KODOMO, "kodomo_district", (district,))
        mail_programs.mark_registered(conn, sid, KODOMO, 1)
        return sid

    return store.write_sync(tx)


@pytest.mark.req("K9")
@pytest.mark.req("K1")
@pytest.mark.allow_blocking
async def test_mail_worker_killed_mid_alert_sends_each_guardian_once(
    dev_setup: Path, store: Store, mailbox: Dovecot, smtp_relay: Relay
) -> None:
    """The urgent program alert's mail worker, in its own process, is SIGKILLed while the relay
    holds the first guardian's message: after the restart that send is 'unconfirmed' (never
    resent) and the other guardian gets the alert: one mail each."""
    tid = await setup_program(store)
    member_by_mail(store, ASAHI, "asahi")
    member_by_mail(store, "hikari.oya@example.net", "hikari")
    member_by_mail(store, MINATO, "minato")  # outside the alert's districts
    sent = await service.send_alert(store, "yamada", tid, "tanpopo", KINDERGARTEN, FILLED)
    did = sent.delivery_id
    async with simulator(6) as line:
        await run_sender(Sender(store, line.api, fast_config()), store=store, delivery_ids=(did,))
    assert (await store.read(mail_store.delivery_mail, did)).recipients == 2
    hold = threading.Event()
    smtp_relay.hold = hold
    env = {**os.environ, "PYTHONPATH": f"{REPO}/daemon:{REPO}"}
    child = subprocess.Popen(  # noqa: ASYNC220 - killed below; waited with a deadline
        [sys.executable, "-m", "tests.support.mail_child", str(dev_setup),
         str(smtp_relay.port), "deliveries"],
        cwd=REPO, env=env, start_new_session=True,
    )  # fmt: skip
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
    sender = MailSender(store, settings_for(smtp_relay.port, mailbox.port), None)
    assert await sender.recover() == 1
    worker = MailDeliveries(store, sender)
    assert await worker.step() is True
    assert await worker.step() is False
    (second,) = smtp_relay.take()
    assert {first["To"], second["To"]} == {ASAHI, "hikari.oya@example.net"}
    assert await store.read(mail_store.send_states, did) == {"unconfirmed": 1, "sent": 1}


HIKARI = "hikari.oya@example.net"  # 光小学校区 (東中学校区)


def audit_details(store: Store, action: str) -> list[dict]:
    return [
        e.entry.detail
        for e in store.read_sync(lambda c: list(audit_store.iter_entries(c)))
        if e.entry.action == action
    ]


@pytest.mark.req("K1")
@pytest.mark.req("K9")
@pytest.mark.req("S16")
async def test_a_new_consent_version_suspends_mail_members_mails_each_once_and_they_answer(
    store: Store, bed: Bed, smtp_relay: Relay, log_text: io.StringIO
) -> None:
    """Staff raise the consent version: the mail members are suspended in the same
    transaction, each gets one re-consent mail (never a second one), and their reply decides:
    「1」 restores the registration with its districts, 「2」 leaves the program with a receipt;
    one who writes the program's name instead sees the same notice."""
    await setup_program(store)
    ids = {
        ASAHI: member_by_mail(store, ASAHI, "asahi"),
        MINATO: member_by_mail(store, MINATO, "minato"),
        HIKARI: member_by_mail(store, HIKARI, "hikari"),
    }
    segment = SegmentFilter.model_validate(
        {
            "program": KODOMO,
            "conditions": [
                {"question": "kodomo_district", "any_of": ["asahi", "minato", "hikari"]}
            ],
        }
    )
    survey = store.read_sync(service.survey_for, KODOMO)
    assert survey is not None
    assert (await audience.channel_counts(store, segment, survey)).mail == 3
    assert store.read_sync(mail_programs.member_counts, KODOMO) == 3
    # Before any raise, nothing is due.
    assert await notices.run_once(store, bed.sender) == {}

    newer = catalogue.child_safety().model_copy(
        update={
            "consent_version": 2,
            "purpose_notice": catalogue.child_safety().purpose_notice + "（改定：連絡先を追加）",
        }
    )
    await service.put_program(store, "admin", KODOMO, newer)
    # Suspended at once, in the transaction that raised the version (recorded in its audit).
    assert audit_details(store, "program.put")[-1]["suspended_mail"] == 3
    assert (await audience.channel_counts(store, segment, survey)).mail == 0
    assert store.read_sync(mail_programs.member_counts, KODOMO) == 0

    # One re-consent mail each, with the new purpose notice and how to answer.
    assert await notices.run_once(store, bed.sender) == {"sent": 3}
    mails = await asyncio.to_thread(smtp_relay.wait_for, 3, 10.0)
    assert sorted(m["To"] for m in mails) == sorted(ids)
    subject = str(mails[0]["Subject"])
    assert subject == "【子ども安全情報】利用目的の改定と再同意のお願い"
    body = body_of(mails[0])
    assert "（改定：連絡先を追加）" in body and "「1」" in body and "「2」" in body
    assert await store.read(mail_store.notice_states) == {"sent": 3}
    # Exactly once: the next runs find nothing to send.
    assert await notices.run_once(store, bed.sender) == {}
    assert smtp_relay.take() == []

    # 「1」 in reply to the notice: the registration resumes with its districts.
    restored = await bed.exchange(resident_mail(ASAHI, f"Re: {subject}", "1"))
    assert "配信を再開しました" in str(restored[0]["Subject"])
    member = store.read_sync(mail_programs.memberships, ids[ASAHI])[KODOMO]
    assert member.consent_version == 2 and member.answers["kodomo_district"] == ("asahi",)
    assert (await audience.channel_counts(store, segment, survey)).mail == 1

    # 「2」: the program's registration is deleted with a receipt; the mail service stays.
    (left,) = await bed.exchange(resident_mail(MINATO, f"Re: {subject}", "2"))
    assert "登録を解除しました" in str(left["Subject"])
    assert "学校区と回答を削除しました" in body_of(left)
    assert store.read_sync(mail_programs.memberships, ids[MINATO]) == {}
    (receipt,) = await store.read(receipts.for_subject, subject_hmac(bed.hmac_key, MINATO))
    assert receipt.reason == "request" and receipt.deleted["program"] == KODOMO
    row = store.read_sync(mail_store.load, MINATO)
    assert row is not None and row.stage == "registered"

    # Writing the program's name shows the same notice; then 1 resumes.
    offer = await say(bed, HIKARI, "子ども安全情報")
    assert "利用目的の内容を改めました" in body_of(offer)
    await say(bed, HIKARI, "1")
    assert (await audience.channel_counts(store, segment, survey)).mail == 2
    assert await notices.run_once(store, bed.sender) == {}
    assert smtp_relay.take() == []
    logs = log_text.getvalue()
    assert "mail.notices.done" in logs
    assert MAIL_ADDRESS_RE.search(logs) is None


@pytest.mark.req("K9")
@pytest.mark.req("S16")
async def test_a_re_consent_mail_is_retried_with_its_key_and_never_resent_after_a_crash(
    store: Store, bed: Bed, mailbox: Dovecot, smtp_relay: Relay
) -> None:
    """The relay unreachable: the notice stays to retry and goes later with the Message-ID
    stored before the first attempt. A notice left pending by a crash (the relay may have it)
    becomes 'unconfirmed' at start-up and is never sent again."""
    await setup_program(store)
    asahi = member_by_mail(store, ASAHI, "asahi")
    minato = member_by_mail(store, MINATO, "minato")
    newer = catalogue.child_safety().model_copy(update={"consent_version": 2})
    await service.put_program(store, "admin", KODOMO, newer)
    cycle = consent.cycle(KODOMO, 2)
    # A crash right after the Message-ID was stored for MINATO, before the relay answered.
    store.write_sync(mail_store.claim_notice, minato, cycle, "<crashed@city.example.jp>", 1, 5)
    down = MailSender(store, settings_for(free_port(), mailbox.port), None)
    assert await down.recover() == 1
    assert await notices.run_once(store, down) == {"retry": 1}
    stored = store.read_sync(
        lambda c: c.execute(
            "SELECT message_id FROM mail_notices WHERE subscriber_id = ?", (asahi,)
        ).fetchone()[0]
    )
    assert await notices.run_once(store, bed.sender) == {"sent": 1}
    (mail,) = await asyncio.to_thread(smtp_relay.wait_for, 1, 10.0)
    assert mail["To"] == ASAHI and mail["Message-ID"] == stored
    assert await store.read(mail_store.notice_states, cycle) == {"sent": 1, "unconfirmed": 1}
    assert await notices.run_once(store, bed.sender) == {}
    assert smtp_relay.take() == []


@pytest.mark.req("K2")
@pytest.mark.req("K9")
async def test_the_march_notice_reaches_each_mail_member_once_before_the_expiry(
    store: Store, bed: Bed, smtp_relay: Relay
) -> None:
    """As in LINE, once per annual cycle at the program's notice time, each registered mail
    member is told when the registration ends and how to register again; a member who joined
    after the notice time is not (the boundary ends a registration made before it anyway)."""
    await setup_program(store)
    member_by_mail(store, ASAHI, "asahi")
    member_by_mail(store, MINATO, "minato")
    policy = catalogue.child_safety().annual
    assert policy is not None
    boundary = boundary_in_year(policy, dt.datetime.now(JST).year + 1)
    notice_at = notice_time_for(policy, boundary)
    late = member_by_mail(store, HIKARI, "hikari")
    store.write_sync(
        lambda c: c.execute(
            "UPDATE mail_program_members SET consented_at = ? WHERE subscriber_id = ?",
            (notice_at + 5, late),
        )
    )
    # Before the notice time: nothing.
    assert await notices.run_once(store, bed.sender, notice_at - 60) == {}
    assert await notices.run_once(store, bed.sender, notice_at + 60) == {"sent": 2}
    mails = await asyncio.to_thread(smtp_relay.wait_for, 2, 10.0)
    assert sorted(m["To"] for m in mails) == sorted([ASAHI, MINATO])
    subject = str(mails[0]["Subject"])
    assert subject == "【子ども安全情報】登録更新のお知らせ"
    body = body_of(mails[0])
    assert format_deadline_ja(boundary) in body and "「子ども安全情報」と本文に書いて" in body
    # Once per cycle: later runs in the same March send nothing more.
    assert await notices.run_once(store, bed.sender, notice_at + 3600) == {}
    assert smtp_relay.take() == []
    # A member who stopped the mail service in between is not written to: the cycle's
    # notices are done, and the next cycle is another key.
    assert await store.read(mail_store.notice_states, notices.annual_cycle(KODOMO, boundary)) == {
        "sent": 2
    }


@pytest.mark.req("K2")
@pytest.mark.req("K9")
async def test_the_citys_annual_rule_notifies_mail_subscribers_once_then_expires_them(
    store: Store, bed: Bed, smtp_relay: Relay
) -> None:
    """When the city's retention rules end registrations at an annual boundary, as LINE
    residents are told once in March, each mail subscriber is told once by mail; at the
    boundary the mail registration is deleted with a receipt (the daemon's mail component runs
    both every minute: kairand.mail.expiry.run_annual, kairand.mail.notices.run_once)."""
    policy = Annual()
    boundary = boundary_in_year(policy, dt.datetime.now(JST).year + 1)
    notice_at = notice_time_for(policy, boundary)
    rules = RetentionRules(rules=(RetentionRule(scope="registration", policy=policy),))
    await store.write(retention_store.save_rules, rules, "admin", notice_at - 86400 * 60)
    await bed.register(ASAHI, ANSWERS)
    await bed.register(MINATO, ANSWERS)
    smtp_relay.take()
    # The first run records itself; nothing is due before the notice time.
    assert (
        await store.write(mail_expiry.run_annual, notice_at - 3600, bed.hmac_key, bed.signing_key)
        == 0
    )
    assert await notices.run_once(store, bed.sender, notice_at - 60) == {}
    assert await notices.run_once(store, bed.sender, notice_at + 60) == {"sent": 2}
    mails = await asyncio.to_thread(smtp_relay.wait_for, 2, 10.0)
    assert sorted(m["To"] for m in mails) == sorted([ASAHI, MINATO])
    assert str(mails[0]["Subject"]) == notices.CITY_SUBJECT
    body = body_of(mails[0])
    assert format_deadline_ja(boundary) in body and "空メール" in body
    assert await notices.run_once(store, bed.sender, notice_at + 7200) == {}
    assert smtp_relay.take() == []
    # One subscriber stops meanwhile; at the boundary the other's registration is deleted.
    await bed.exchange(resident_mail(MINATO, "", "停止"))
    expired = await store.write(
        mail_expiry.run_annual, boundary + 60, bed.hmac_key, bed.signing_key
    )
    assert expired == 1 and store.read_sync(mail_store.load, ASAHI) is None
    (receipt,) = await store.read(receipts.for_subject, subject_hmac(bed.hmac_key, ASAHI))
    assert receipt.reason == "annual_expiry"
    # A second run over the same span deletes nothing more.
    assert (
        await store.write(mail_expiry.run_annual, boundary + 120, bed.hmac_key, bed.signing_key)
        == 0
    )


@pytest.mark.req("K9")
@pytest.mark.req("S16")
async def test_raising_the_consent_version_through_the_api_sends_the_re_consent_mail_at_once(
    config: Config, store: Store, bed: Bed, mailbox: Dovecot, smtp_relay: Relay
) -> None:
    """The mail component as the daemon runs it, and the staff API given its wake as the daemon
    does: an administrator raises the consent version and the re-consent mail goes at once
    (the component's own check is a minute away), once."""
    await asyncio.to_thread(
        keyring.set_password, SERVICE, secrets.MAIL_IMAP_PASSWORD, "imap-test-password"
    )
    await setup_program(store)
    add_staff(store)
    member_by_mail(store, ASAHI, "asahi")
    app = web.Application()
    app[CONFIG] = _enabled(config, mailbox, smtp_relay.port)
    app[STORE] = store
    app[STOPPING] = asyncio.Event()
    app[TASKS] = TaskGroup()
    component = mail_component(app)
    await component.__anext__()
    try:
        async with (
            serve(config, store, None, header_resolver, mail_wake=app[notices.WAKE]),
            connect(config.api.socket) as api,
        ):
            await asyncio.sleep(0.5)  # the component's first check has found nothing to send
            assert smtp_relay.take() == []
            raised = catalogue.child_safety().model_copy(update={"consent_version": 2})
            r = await api.as_user("adm").put(
                f"/v1/programs/{KODOMO}", {"definition": raised.model_dump(mode="json")}
            )
            assert r.status == 200, r.body
            (mail,) = await asyncio.to_thread(smtp_relay.wait_for, 1, 10.0)
            assert mail["To"] == ASAHI and "再同意のお願い" in str(mail["Subject"])
            await asyncio.sleep(0.5)
            assert smtp_relay.take() == []  # once
    finally:
        app[STOPPING].set()
        with contextlib.suppress(StopAsyncIteration):
            await component.__anext__()
        await app[TASKS].close()

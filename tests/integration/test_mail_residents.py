"""Mail-using residents of the simulator against the daemon's mail component:
guardians register by 空メール through dovecot and the relay, choosing their area and topics;
an approved delivery reaches those it concerns by mail exactly once; 停止 deletes one."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest

from kairand.config import Config
from kairand.delivery.sender import Sender
from kairand.keys import secrets
from kairand.keys.backends import SERVICE
from kairand.programs import service
from kairand.segments.model import SegmentFilter
from kairand.simulator import mailbed
from kairand.simulator.mail_residents import MailTown, choose, demo_guardians
from kairand.store import mail as mail_store
from kairand.store.database import Store
from tests.integration.test_mail_deliveries import enabled, mail_running, wait_mail
from tests.support.delivery_harness import approved, fast_config, populate, run_sender
from tests.support.delivery_harness import simulator as line_simulator
from tests.support.mail_servers import Dovecot, dovecot
from tests.support.mail_settings import AUTHSERV, REGISTRATION
from tests.support.ports import free_port
from tests.support.programs_support import FILLED, KINDERGARTEN, setup_program

BOUSAI = SegmentFilter.model_validate(
    {"conditions": [{"question": "topics", "any_of": ["bousai"]}]}
)


@pytest.fixture
def mailbox(short_tmp: Path) -> Iterator[Dovecot]:
    with dovecot(short_tmp / "dovecot") as server:
        yield server


def test_a_guardian_picks_the_options_they_like() -> None:
    body = "【質問 3/4】地域\n\n1. 本町\n2. 駅前\n3. 旭\n\n番号を1つ、返信してください（例：1）。"
    assert choose(body, frozenset({"旭"}), random.Random(0)) == "3"
    multi = "1. 子育て\n2. 防災・防犯\n3. イベント\n番号を返信してください。複数選ぶ場合は…"
    assert choose(multi, frozenset({"子育て", "イベント"}), random.Random(0)) == "1 3"
    year = choose(
        "西暦4桁の数字で返信してください（1900〜2026、例：1985）。", frozenset(), random.Random(0)
    )
    assert year.isdigit() and 1978 <= int(year) <= 1995


@pytest.mark.req("K9")
async def test_mail_residents_register_receive_once_and_stop(
    config: Config, store: Store, mailbox: Dovecot
) -> None:
    await asyncio.to_thread(
        keyring.set_password, SERVICE, secrets.MAIL_IMAP_PASSWORD, mailbed.PASSWORD
    )
    populate(store, 9)
    guardians = demo_guardians()
    town = MailTown(mailbox, guardians, registration=REGISTRATION, authserv=AUTHSERV)
    stack = contextlib.ExitStack()
    smtp = await asyncio.to_thread(
        stack.enter_context, mailbed.relay(free_port(), on_message=town.on_message)
    )
    stack.callback(town.close)
    try:
        async with mail_running(enabled(config, mailbox, smtp.port), store):
            await asyncio.to_thread(town.start)
            registered = await asyncio.to_thread(
                town.wait, lambda: town.count("registered") == len(guardians), 60
            )
            assert registered, await asyncio.to_thread(town.status_text)
            rows = await store.read(mail_store.recipients)
            assert len(rows) == len(guardians)
            assert sorted(a["area"] for _, a in rows) == sorted(
                [("honmachi",), ("ekimae",), ("asahi",), ("kitamachi",)]
            )
            did = await approved(store, BOUSAI, messages=("防災訓練のお知らせです。",))
            async with line_simulator(9) as line:
                sender = Sender(store, line.api, fast_config())
                await run_sender(sender, store=store, delivery_ids=(did,))
            await wait_mail(store, did, 2)
            got = await asyncio.to_thread(town.wait, lambda: town.alerts()[0] >= 2, 30)
            assert got, await asyncio.to_thread(town.status_text)
            # The two guardians who chose 防災・防犯, once each.
            assert await asyncio.to_thread(town.alerts) == (2, 0)
            assert {a for a, g in town.guardians.items() if g.alerts} == {
                "hogosha1@example.net",
                "hogosha3@example.net",
            }
            await asyncio.to_thread(town.stop_one, "hogosha4@example.net")
            stopped = await asyncio.to_thread(town.wait, lambda: town.count("stopped") == 1, 30)
            assert stopped, await asyncio.to_thread(town.status_text)
            deadline = time.monotonic() + 10
            while len(await store.read(mail_store.recipients)) != 3:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
    finally:
        await asyncio.to_thread(stack.close)
    assert "@" not in await asyncio.to_thread(town.status_text)


@pytest.mark.req("K9")
@pytest.mark.req("K1")
async def test_mail_guardians_join_the_program_and_the_alert_reaches_its_district_once(
    config: Config, store: Store, mailbox: Dovecot
) -> None:
    await asyncio.to_thread(
        keyring.set_password, SERVICE, secrets.MAIL_IMAP_PASSWORD, mailbed.PASSWORD
    )
    tid = await setup_program(store)
    populate(store, 9)
    guardians = demo_guardians()
    town = MailTown(mailbox, guardians, registration=REGISTRATION, authserv=AUTHSERV)
    stack = contextlib.ExitStack()
    smtp = await asyncio.to_thread(
        stack.enter_context, mailbed.relay(free_port(), on_message=town.on_message)
    )
    stack.callback(town.close)
    try:
        async with mail_running(enabled(config, mailbox, smtp.port), store):
            await asyncio.to_thread(town.start)
            settled = await asyncio.to_thread(town.wait, town.settled, 90)
            assert settled and town.joined() == 2, await asyncio.to_thread(town.status_text)
            sent = await service.send_alert(store, "yamada", tid, "tanpopo", KINDERGARTEN, FILLED)
            async with line_simulator(9) as line:
                sender = Sender(store, line.api, fast_config())
                await run_sender(sender, store=store, delivery_ids=(sent.delivery_id,))
            await wait_mail(store, sent.delivery_id, 1)
            got = await asyncio.to_thread(town.wait, lambda: town.alerts()[0] >= 1, 30)
            assert got, await asyncio.to_thread(town.status_text)
            # 朝日小学校区's guardian once; 港小学校区's guardian (outside the alert) not.
            assert await asyncio.to_thread(town.alerts) == (1, 0)
            assert {a for a, g in town.guardians.items() if g.alerts} == {"hogosha3@example.net"}
            mail = await store.read(mail_store.delivery_mail, sent.delivery_id)
            assert (mail.recipients, mail.sent) == (1, 1)
    finally:
        await asyncio.to_thread(stack.close)

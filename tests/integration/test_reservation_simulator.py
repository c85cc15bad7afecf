"""Window reservations end to end: simulated residents book in the chat of a real `kairand` process
through signed webhooks (the simulator's residents read labels, type kana and phone, take
another time when a slot fills), are reminded by push (the real reminder worker, clock
injected, pushing to the simulator), and cancel — and the store matches what every resident
was told: never overbooked, no booking lost, the profile never fetched (W6)."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

import aiohttp
import pytest

from kairand.config import Config
from kairand.line.client import line_api
from kairand.reservations import calendar, notices, service
from kairand.reservations.model import Catalogue, DayOverride, Period, example_service
from kairand.simulator import Simulator, SimulatorConfig, WebhookTarget
from kairand.store import reservations as rstore
from kairand.store.bootstrap import open_store
from kairand.store.database import Store
from tests.support.line_fakes import channel_secret, envelope, post_signed, setup_dev
from tests.support.ports import free_port

BOOKERS = 40


def _start_daemon(config_path: Path, log_file: BinaryIO) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "kairand", "--config", str(config_path)],
        stdout=log_file,
        stderr=log_file,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


async def _wait_ready(config: Config, secret: str, proc: subprocess.Popen[bytes]) -> None:
    body = envelope(config.webhook.bot_user_id, [])
    assert config.webhook.socket is not None
    for _ in range(400):
        assert proc.poll() is None, "kairand exited at start-up"
        try:
            if await post_signed(config, secret, body) == 200:
                return
        except (aiohttp.ClientError, OSError):
            pass
        await asyncio.sleep(0.05)
    raise TimeoutError("kairand did not start")


def rush_service(now: float, places_per_day: int, days: int, capacity: int) -> Catalogue:
    """A service open on DAYS dates from the day after tomorrow, 09:00 on, with
    PLACES_PER_DAY places a day (capacity per 30-minute slot): the total is known exactly."""
    slots = places_per_day // capacity
    end = 9 * 60 + 30 * slots
    first = calendar.today(now) + dt.timedelta(days=2)
    overrides = tuple(
        DayOverride(
            date=first + dt.timedelta(days=i),
            periods=(Period(start="09:00", end=f"{end // 60:02d}:{end % 60:02d}"),),
        )
        for i in range(days)
    )
    base = example_service()
    return Catalogue(
        services=(
            base.model_copy(
                update={
                    "capacity": capacity,
                    "weekly": {},
                    "overrides": overrides,
                    "open_on_holidays": True,
                    "closes_hours_before": 1,
                }
            ),
        )
    )


def _save(store: Store, catalogue: Catalogue) -> None:
    store.write_sync(service.save_catalogue, catalogue, "test", int(time.time()))


@pytest.mark.req("W1")
@pytest.mark.req("W6")
@pytest.mark.req("W8")
@pytest.mark.allow_blocking
async def test_residents_book_are_reminded_and_cancel(short_tmp: Path) -> None:
    sim_port = free_port()
    config_path, config = await asyncio.to_thread(setup_dev, short_tmp / "dev", sim_port)
    assert config.keyring.directory is not None and config.webhook.socket is not None
    secret = channel_secret(config)
    token = (config.keyring.directory / "line-channel-access-token").read_text().strip()
    now = time.time()
    places = 30  # 2 days × 15 places (5 slots × 3): fewer than the bookers
    catalogue = rush_service(now, 15, 2, 3)
    store = await asyncio.to_thread(open_store, config)
    await asyncio.to_thread(_save, store, catalogue)
    sim_config = SimulatorConfig(
        seed=14,
        population=BOOKERS,
        channel_secret=secret,
        access_token=token,
        bot_user_id=config.webhook.bot_user_id,
        port=sim_port,
        think_time_s=(0.0, 0.2),
        webhook=WebhookTarget(
            "http://localhost" + config.webhook.path, unix_socket=str(config.webhook.socket)
        ),
    )
    log_path = short_tmp / "kairand.log"
    log_file = log_path.open("ab")
    proc = _start_daemon(config_path, log_file)
    try:
        async with Simulator(sim_config) as sim:
            await _wait_ready(config, secret, proc)
            people = list(sim.population.residents)
            sim.befriend(people)
            for resident in people:
                # Everyone keeps trying while times are offered: all places must fill.
                sim.start_booking(resident.user_id, intent="keep", patience=1000)
            async with asyncio.timeout(90):
                # Bookers' progress has no event to wait on: poll it, under a deadline.
                while any(  # noqa: ASYNC110
                    m.state not in ("done", "gave_up") for _, m in sim.bookers.values()
                ):
                    await asyncio.sleep(0.1)
            told = sim.booked()
            assert len(told) == places  # every place taken, and no more
            assert sim.booking_outcomes["gave_up"] == BOOKERS - places
            assert sim.booking_outcomes["full"] > 0  # the race really happened

            active = await asyncio.to_thread(
                store.read_sync, lambda c: rstore.in_range(c, 0, 2**40)
            )
            by_number = {b.number: b for b in active}
            # No booking lost or invented: the store holds exactly the numbers residents got.
            assert sorted(told.values()) == sorted(by_number)
            assert all(b.state == "active" for b in active)
            per_slot: dict[str, int] = {}
            for b in active:
                per_slot[b.slot] = per_slot.get(b.slot, 0) + 1
            assert max(per_slot.values()) <= 3

            # Reminders: the day before at 08:00 (the real worker, clock injected).
            first = min(b.slot_at for b in active)
            eve = calendar.parse_key(min(b.slot for b in active))
            assert eve is not None
            remind_at = int((eve - dt.timedelta(days=1)).replace(hour=8, minute=0).timestamp())
            async with line_api(sim.api_url, token) as line:
                sent = await notices.run_once(store, line, remind_at)
                again = await notices.run_once(store, line, remind_at + 60)
            day_one = [b for b in active if b.slot_at < first + 86400]
            assert sent == {"sent": len(day_one)} and again == {}
            pushes = sim.ledger.find(kind="push")
            assert {p.user_id for p in pushes} == {
                uid for uid, number in told.items() if by_number[number].slot_at < first + 86400
            }
            assert all(p.retry_key and "明日、ご予約の日です" in p.texts[0] for p in pushes)

            # One reminded resident cancels in the chat.
            canceller = pushes[0].user_id
            plan, memory = sim.bookers[canceller]
            sim.bookers[canceller] = (
                replace(plan, intent="cancel"),
                replace(memory, state="booked"),
            )
            sim.send_text(canceller, "予約の確認")
            async with asyncio.timeout(30):
                while sim.bookers[canceller][1].number:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            cancelled = by_number[told[canceller]]
            after = await asyncio.to_thread(store.read_sync, rstore.get, cancelled.id)
            assert after is not None and after.state == "cancelled"
            assert after.cancelled_by == "resident"
            texts = [t for r in sim.ledger.for_user(canceller) for t in r.texts]
            assert any("取り消しました" in t for t in texts)
            assert sim.platform.counters.get("profile", 0) == 0  # W6
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        log_file.close()
        store.close()
    assert proc.returncode == 0
    log_text = log_path.read_text(encoding="utf-8")
    assert not any(r.user_id in log_text for r in people)
    assert not any(p in log_text for p in ("スイタ", "090-"))

"""Exactly-once delivery against the simulator, with faults and a real kairand killed with
SIGKILL at random points and restarted."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kairand.config import load_config
from kairand.delivery import service
from kairand.delivery.model import TERMINAL, DeliveryContent, Status
from kairand.devsetup import init_dev
from kairand.keys import secrets
from kairand.segments.model import SegmentFilter
from kairand.simulator import FaultProfile, Simulator, SimulatorConfig
from kairand.store import synthetic
from kairand.store.bootstrap import open_store, select_keyring
from tests.support.ports import free_port

SEGMENT = SegmentFilter.model_validate(
    {
        "conditions": [
            {"question": "area", "any_of": ["asahi", "minato"]},
            {"question": "birth_year", "age_from": 20, "age_to": 79},
        ]
    }
)
AREAS = ("asahi", "minato", "wakaba")


def residents(n: int, this_year: int) -> tuple[list[synthetic.SyntheticResident], set[str]]:
    rows, expected = [], set()
    for i in range(n):
        uid = f"U{i:032x}"
        area = AREAS[i % 3]
        year = this_year - (10 + (i * 7) % 80)  # ages 10..89
        stopped, registered = i % 10 == 9, i % 7 != 6
        rows.append(
            synthetic.SyntheticResident(
                uid, registered, stopped, {"area": [area]}, {"birth_year": year}
            )
        )
        if area != "wakaba" and not stopped and registered and 20 <= this_year - year <= 79:
            expected.add(uid)
    return rows, expected


def configure(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    text = text.replace("[line]\n", "[line]\nrequest_timeout_seconds = 0.8\n", 1)
    text = text.replace(
        "[delivery]\n",
        "[delivery]\nmulticast_rate_per_second = 6\nconcurrency = 4\n"
        "retry_base_seconds = 0.05\nretry_max_seconds = 0.4\npoll_seconds = 0.1\n",
        1,
    )
    path.write_text(text, encoding="utf-8")


@pytest.mark.allow_blocking
@pytest.mark.slow
@pytest.mark.parametrize("seed", [5, 17, 29])
async def test_sigkill_and_faults_exactly_once(short_tmp: Path, seed: int) -> None:
    """N4, S10: with the simulator injecting 5xx, timeouts and lost responses, and kairand
    SIGKILLed at random points of a delivery and restarted, every resident in the segment
    has exactly one copy in the simulator's ledger and no one outside it has any."""
    rng = random.Random(seed)
    sim_port = free_port()
    config_path = init_dev(short_tmp / "dev", webhook_port=free_port(), simulator_port=sim_port)
    configure(config_path)
    config = load_config(config_path)
    select_keyring(config)
    token = secrets.get_secret(secrets.CHANNEL_ACCESS_TOKEN)
    store = open_store(config)
    this_year = time.gmtime().tm_year  # the send date's year (JST) differs only on 31 Dec
    rows, expected = residents(8_000, this_year)
    store.write_sync(synthetic.insert_residents, rows, int(time.time()))
    faults = FaultProfile(
        latency_min_ms=20,
        latency_max_ms=80,
        error_ratio=0.1,
        timeout_ratio=0.05,
        lost_ratio=0.15,
        hang_seconds=1.5,
        seed=seed,
    )
    sim = Simulator(
        SimulatorConfig(
            seed=seed,
            population=0,
            access_token=token,
            port=sim_port,
            faults=faults,
            auto_react=False,
        )
    )
    await sim.start()
    for row in rows:
        sim.platform.add_follower({"userId": row.line_user_id, "displayName": "住民"})
    content = DeliveryContent(title="防災", messages=("避難訓練のお知らせ",), segment=SEGMENT)
    did = await service.create_draft(store, "tanaka", content)
    await service.submit(store, did, "tanaka")
    await service.approve(store, did, "suzuki")
    log = (short_tmp / "kairand.log").open("w")

    def start() -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "kairand", "--config", str(config_path)],
            stdout=log,
            stderr=log,
        )

    kills_mid_delivery = 0
    try:
        for kill in range(3):
            proc = start()
            if kill == 0:
                await asyncio.sleep(rng.uniform(0.3, 2.0))  # anywhere, start-up included
            else:
                before = len(sim.ledger)
                async with asyncio.timeout(30):
                    while len(sim.ledger) == before:  # noqa: ASYNC110 (polling another process)
                        await asyncio.sleep(0.01)
                await asyncio.sleep(rng.uniform(0.0, 0.3))
            proc.send_signal(signal.SIGKILL)
            await asyncio.to_thread(proc.wait)
            view = await service.get(store, did)
            if view.status == Status.sending and view.batches_sent < view.batch_total:
                kills_mid_delivery += 1
        proc = start()
        async with asyncio.timeout(60):
            while (await service.get(store, did)).status not in TERMINAL:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        final = await service.get(store, did)
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 30)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
        await sim.stop()
        store.close()
    assert final.status == Status.sent, final.status_reason
    assert final.sent_count == len(expected)
    assert kills_mid_delivery >= 2, "the kills did not land during the delivery"
    received = sim.ledger.recipients(kind="multicast")
    assert set(received) == expected
    assert set(received.values()) == {1}, "someone received the delivery twice"
    assert sim.platform.counters.get("multicast", 0) > -(-len(expected) // 500)  # retries happened

"""The queue end to end: a real `kairand` process, the LINE simulator's residents taking tickets
in the chat (reading the labels), a walk-in's kiosk ticket tied to LINE by "scanning" its QR
code, the desk calling numbers through the real staff API (SO_PEERCRED), and the call pushes
arriving once each at the residents; a no-show marked absent after the recalls."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import BinaryIO

import pytest

from kairand.api.client import connect
from kairand.config import Config
from kairand.queue import core, service
from kairand.simulator import Simulator, SimulatorConfig, WebhookTarget
from kairand.store import queue as qstore
from kairand.store.bootstrap import open_store
from kairand.store.database import Store
from tests.support.line_fakes import channel_secret, setup_dev
from tests.support.ports import free_port

VISITORS = 6


def _start_daemon(config_path: Path, log_file: BinaryIO) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "kairand", "--config", str(config_path)],
        stdout=log_file,
        stderr=log_file,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


async def _until(condition, limit: float = 30.0) -> None:
    async with asyncio.timeout(limit):
        while not condition():  # noqa: ASYNC110 - the daemon is another process: poll it
            await asyncio.sleep(0.05)


def _tickets(store: Store) -> list[qstore.Ticket]:
    day = core.day_of(time.time()).isoformat()
    return store.read_sync(qstore.of_day, day, None)


@pytest.mark.req("W2")
@pytest.mark.req("W3")
@pytest.mark.allow_blocking
async def test_residents_queue_scan_the_kiosk_qr_and_are_called(short_tmp: Path) -> None:
    sim_port = free_port()
    config_path, config = await asyncio.to_thread(setup_dev, short_tmp / "dev", sim_port)
    assert config.keyring.directory is not None and config.webhook.socket is not None
    assert config.queue.services, "the development configuration has a queue"
    secret = channel_secret(config)
    token = (config.keyring.directory / "line-channel-access-token").read_text().strip()
    store = await asyncio.to_thread(open_store, config)
    sim_config = SimulatorConfig(
        seed=15,
        population=VISITORS + 1,
        channel_secret=secret,
        access_token=token,
        bot_user_id=config.webhook.bot_user_id,
        port=sim_port,
        think_time_s=(0.0, 0.1),
        webhook=WebhookTarget(
            "http://localhost" + config.webhook.path, unix_socket=str(config.webhook.socket)
        ),
    )
    log_file = (short_tmp / "kairand.log").open("ab")
    proc = _start_daemon(config_path, log_file)
    try:
        async with Simulator(sim_config) as sim:
            people = [r.user_id for r in sim.population.residents]
            sim.befriend(sim.population.residents)
            await _wait_api(config, proc)
            walk_in, line_users = people[0], people[1:]
            for uid in line_users:
                sim.take_ticket(uid, "保育所")
            await _until(lambda: all(sim.visitors[u].label for u in line_users))
            labels = {sim.visitors[u].label for u in line_users}
            assert labels == {f"A-{i:03d}" for i in range(1, VISITORS + 1)}
            # A walk-in at the kiosk: a paper ticket; they scan its QR code with LINE.
            issued = await asyncio.to_thread(
                store.write_sync, service.issue, config.queue, "hoiku", "kiosk", time.time()
            )
            assert issued.token is not None
            sim.scan_qr(walk_in, core.qr_link(config.queue.line_basic_id, issued.token))
            await _until(lambda: sim.visitors[walk_in].label == issued.ticket.label)
            everyone = [walk_in, *line_users]
            holder = {sim.visitors[u].label: u for u in everyone}

            def calls_to(uid: str) -> list[str]:
                # Pushes only: a reply to 順番を確認 may also say which window to go to.
                return [
                    t
                    for r in sim.ledger.for_user(uid)
                    if r.kind == "push"
                    for t in r.texts
                    if "窓口へお越し" in t
                ]

            async def called(label: str, times: int) -> None:
                # A person walks up only after the call reached their phone: a ticket served or
                # marked absent before its push went out is (rightly) never pushed.
                await _until(lambda: len(calls_to(holder[label])) >= times)

            # The desk calls everybody through the real API (the OS user has the counter role).
            async with connect(config.api.socket) as api:
                for _ in range(VISITORS + 1):
                    r = await api.post("/v1/queue/call", {"service": "hoiku", "counter": 2})
                    assert r.status == 200, (
                        r.body,
                        [(t.label, t.state) for t in await asyncio.to_thread(_tickets, store)],
                    )
                    ticket_id, label = r.body["id"], r.body["label"]
                    await called(label, 1)
                    if label == "A-001":  # a no-show: recalled twice, then absent
                        for n in range(2):
                            r = await api.post(
                                f"/v1/queue/tickets/{ticket_id}/action", {"action": "recall"}
                            )
                            assert r.status == 200, r.body
                            await called(label, n + 2)
                        r = await api.post(
                            f"/v1/queue/tickets/{ticket_id}/action", {"action": "absent"}
                        )
                        assert r.status == 200, r.body
                    else:
                        for action in ("serve", "done"):
                            r = await api.post(
                                f"/v1/queue/tickets/{ticket_id}/action", {"action": action}
                            )
                            assert r.status == 200, r.body
                board = (await api.get("/v1/queue/board")).body
                assert board["services"][0]["waiting"] == 0
            await _until(lambda: all(sim.visitors[u].called for u in everyone))
            for uid in everyone:
                label = sim.visitors[uid].label
                expected = 3 if label == "A-001" else 1  # the call and two recalls
                assert calls_to(uid) == [f"{label}番の方、2番窓口へお越しください。"] * expected
            states = {t.label: t.state for t in await asyncio.to_thread(_tickets, store)}
            assert states["A-001"] == "absent"
            assert all(s == "done" for k, s in states.items() if k != "A-001")
            assert sim.platform.counters.get("profile", 0) == 0  # W6: never fetched
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.wait, 30)
        log_file.close()
        await asyncio.to_thread(store.close)


async def _wait_api(config: Config, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(400):
        assert proc.poll() is None, "kairand exited at start-up"
        try:
            async with connect(config.api.socket) as api:
                if (await api.get("/v1/queue/board")).status == 200:
                    return
        except OSError:
            pass
        await asyncio.sleep(0.05)
    raise TimeoutError("kairand did not start")

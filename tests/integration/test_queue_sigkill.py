"""A killed daemon loses no ticket and sends no call twice. A real `kairand` process is
SIGKILLed exactly between LINE accepting a call push and the daemon marking it sent (the
simulator kills it from inside the push request, before answering), and then at random points of
a burst of desk calls; after each restart the push goes out again with its stored retry key, LINE
answers 409 (already accepted), and that counts as sent."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp
import pytest

import kairand
from kairand.api.client import connect
from kairand.config import Config
from kairand.queue import core
from kairand.simulator import Simulator, SimulatorConfig, WebhookTarget
from kairand.simulator.ledger import Receipt
from kairand.store import queue as qstore
from kairand.store.bootstrap import open_store
from kairand.store.database import Store
from tests.support.line_fakes import channel_secret, setup_dev
from tests.support.ports import free_port

RESIDENTS = 12
CALL = "窓口へお越しください"
# The worktree's own code for the daemon child (not whatever the parent's environment points at).
DAEMON_DIR = Path(kairand.__file__).resolve().parents[1]
CODE_PATH = os.pathsep.join([str(DAEMON_DIR), str(DAEMON_DIR.parent / "tui")])


def _start(config_path: Path, log: BinaryIO) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "kairand", "--config", str(config_path)],
        stdout=log,
        stderr=log,
        env={**os.environ, "PYTHONPATH": CODE_PATH, "PYTHONUNBUFFERED": "1"},
    )


async def _until(condition: Any, limit: float = 60.0) -> None:
    async with asyncio.timeout(limit):
        while not condition():  # noqa: ASYNC110 - the daemon is another process: poll it
            await asyncio.sleep(0.05)


async def _wait_api(config: Config, proc: subprocess.Popen[bytes]) -> None:
    async with asyncio.timeout(60):
        while True:
            assert proc.poll() is None, "kairand exited at start-up"
            try:
                async with connect(config.api.socket) as api:
                    if (await api.get("/v1/queue/board")).status == 200:
                        return
            except OSError:
                pass
            await asyncio.sleep(0.05)


def _tickets(store: Store) -> list[qstore.Ticket]:
    return store.read_sync(qstore.of_day, core.day_of(time.time()).isoformat(), None)


def _pending(store: Store) -> list[qstore.PendingPush]:
    return store.read_sync(qstore.pending_pushes)


def _pending_keys(store: Store) -> set[tuple[int, str]]:
    return {(p.ticket_id, p.kind) for p in _pending(store)}


def _calls(sim: Simulator, uid: str) -> list[Receipt]:
    return [r for r in sim.ledger.for_user(uid) if r.kind == "push" and r.contains_text(CALL)]


@pytest.mark.req("W2")
@pytest.mark.req("W3")
@pytest.mark.slow
@pytest.mark.allow_blocking
async def test_sigkilled_daemon_loses_no_ticket_and_sends_no_call_twice(short_tmp: Path) -> None:
    rng = random.Random(15)
    sim_port = free_port()
    config_path, config = await asyncio.to_thread(setup_dev, short_tmp / "dev", sim_port)
    assert config.keyring.directory is not None and config.webhook.socket is not None
    token = (config.keyring.directory / "line-channel-access-token").read_text().strip()
    store = await asyncio.to_thread(open_store, config)
    sim_config = SimulatorConfig(
        seed=15,
        population=RESIDENTS,
        channel_secret=channel_secret(config),
        access_token=token,
        bot_user_id=config.webhook.bot_user_id,
        port=sim_port,
        think_time_s=(0.0, 0.05),
        webhook=WebhookTarget(
            "http://localhost" + config.webhook.path, unix_socket=str(config.webhook.socket)
        ),
    )
    log = (short_tmp / "kairand.log").open("ab")
    proc = _start(config_path, log)
    kills: list[str] = []
    try:
        async with Simulator(sim_config) as sim:
            people = [r.user_id for r in sim.population.residents]
            sim.befriend(sim.population.residents)
            await _wait_api(config, proc)
            for uid in people:
                sim.take_ticket(uid, "保育所")
            await _until(lambda: all(sim.visitors[u].label for u in people))
            holder = {sim.visitors[u].label: u for u in people}
            labels = sorted(holder)
            assert labels == [f"A-{i:03d}" for i in range(1, RESIDENTS + 1)]

            # 1. Killed between LINE accepting the call push and marking it sent, three times.
            armed: list[subprocess.Popen[bytes]] = []

            def kill_on_call(receipt: Receipt, messages: list[dict[str, Any]]) -> None:
                if armed and receipt.kind == "push" and CALL in str(messages):
                    os.kill(armed.pop().pid, signal.SIGKILL)

            sim.platform.listeners.append(kill_on_call)
            for _round in range(3):
                armed.append(proc)
                # Killed perhaps before its answer: the store says what was called.
                with contextlib.suppress(OSError, aiohttp.ClientError):
                    async with connect(config.api.socket) as api:
                        await api.post("/v1/queue/call", {"service": "hoiku", "counter": 1})
                await asyncio.to_thread(proc.wait, 60)
                assert not armed, "the daemon was not killed inside the push"
                called = [
                    t for t in await asyncio.to_thread(_tickets, store) if t.state == "called"
                ]
                newest = max(called, key=lambda t: t.called_at or 0)
                # LINE has the push; the daemon died before marking it sent.
                assert len(_calls(sim, holder[newest.label])) == 1
                pending = await asyncio.to_thread(_pending, store)
                assert (newest.id, "call1") in {(p.ticket_id, p.kind) for p in pending}
                kills.append(newest.label)
                proc = _start(config_path, log)
                await _wait_api(config, proc)
                await _until(lambda t=newest.id: (t, "call1") not in _pending_keys(store))
                assert len(_calls(sim, holder[newest.label])) == 1  # the resend met a 409
            sim.platform.listeners.remove(kill_on_call)

            # 2. A burst of calls from three windows; three times the daemon is killed a random
            # moment after a random call of the burst (pushes in flight), then restarted.
            loop = asyncio.get_running_loop()
            random_kills = 0
            while True:
                tickets = await asyncio.to_thread(_tickets, store)
                left = sum(t.state == "waiting" for t in tickets)
                if left == 0:
                    break
                kill_after = rng.randint(0, min(2, left - 1)) if random_kills < 3 else None
                try:
                    async with connect(config.api.socket) as api:
                        for i in range(left):
                            counter = 1 + i % 3
                            r = await api.post(
                                "/v1/queue/call", {"service": "hoiku", "counter": counter}
                            )
                            assert r.status == 200, r.body
                            if i == kill_after:
                                loop.call_later(rng.uniform(0.0, 0.1), proc.kill)
                except (OSError, aiohttp.ClientError):
                    pass  # killed mid-burst
                if kill_after is not None:
                    await asyncio.to_thread(proc.wait, 60)
                    random_kills += 1
                    proc = _start(config_path, log)
                    await _wait_api(config, proc)
            await _until(lambda: not _pending(store))
            tickets = await asyncio.to_thread(_tickets, store)
            states = await asyncio.to_thread(store.read_sync, qstore.push_states)
    finally:
        if proc.poll() is None:
            proc.terminate()
            await asyncio.to_thread(proc.wait, 30)
        log.close()
        await asyncio.to_thread(store.close)
    # No ticket lost: A-001..A-012, each called once.
    assert sorted(t.label for t in tickets) == labels
    assert all(t.state == "called" for t in tickets)
    # Every resident got exactly one call push, with the window the ticket was called to.
    by_label = {t.label: t for t in tickets}
    for label, uid in holder.items():
        calls = _calls(sim, uid)
        assert [r.texts for r in calls] == [
            (f"{label}番の方、{by_label[label].counter}番窓口へお越しください。",)
        ], label
    # Each push carried its retry key once in the ledger; resends were refused with 409.
    keys = [r.retry_key for r in sim.ledger.receipts if r.kind == "push"]
    assert None not in keys and len(keys) == len(set(keys))
    assert sim.platform.counters.get("push", 0) > len(keys)
    assert states.get("pending", 0) == 0 and states.get("failed", 0) == 0
    assert len(kills) == 3 and random_kills == 3

"""The webhook processes new events in their own insert transaction when the inbox worker runs
(kairand.line.webhook.InlineInbox): one commit per resident step instead of two. A real
webhook server on its unix socket, a real SQLCipher store, a real InboxWorker (no LINE)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from kairand.config import Config
from kairand.keys import secrets as keys
from kairand.line.inbox import BatchResult, InboxWorker, PurgeKeys
from kairand.line.webhook import INBOX_INLINE, inline_now, make_webhook_app, start_sites
from kairand.runtime import SENDING_GATE, SendingGate
from kairand.store import inbox, residents
from kairand.store.bootstrap import open_store
from kairand.store.database import Connection, Store
from tests.support.line_fakes import (
    channel_secret,
    envelope,
    event,
    post_signed,
    setup_dev,
    user_id,
)
from tests.support.ports import free_port

Setup = tuple[Config, Store, PurgeKeys, str]


@pytest.fixture
def setup(short_tmp: Path) -> Iterator[Setup]:
    _, config = setup_dev(short_tmp / "dev", free_port())
    store = open_store(config)
    purge_keys = PurgeKeys(keys.receipt_hmac_key(), keys.signing_key())
    store.bind_loop()  # the tests' loop runs on this thread
    yield config, store, purge_keys, channel_secret(config)
    store.close()


async def _post(config: Config, secret: str, body: bytes) -> int:
    return await post_signed(config, secret, body)


def _state(conn: Connection, user: str) -> tuple[int, bool]:
    return inbox.count_pending(conn), residents.load(conn, user) is not None


async def _serve(setup: Setup, wake: asyncio.Event, inline: Any) -> Any:
    config, store, _, secret = setup
    app = make_webhook_app(config, store, secret, wake, inline=lambda: inline)
    runner, _ = await start_sites(config, app)
    return runner


async def test_a_new_event_is_processed_in_its_insert_transaction(
    setup: Setup,
) -> None:
    """when LINE gets its 200 the event is already processed (its effects committed with
    it), and the worker's loop is not woken for it."""
    config, store, purge_keys, secret = setup
    wake = asyncio.Event()
    worker = InboxWorker(store, None, purge_keys, wake)
    worker.running = True  # as while its loop runs; the loop itself is not needed here
    runner = await _serve(setup, wake, worker)
    try:
        user = user_id()
        body = envelope(config.webhook.bot_user_id, [event("follow", user, int(time.time()))])
        assert await _post(config, secret, body) == 200
        assert await store.read(_state, user) == (0, True)
        assert worker.processed == 1
        assert not wake.is_set()
    finally:
        await runner.cleanup()


async def test_without_a_running_worker_events_wait_for_it(
    setup: Setup,
) -> None:
    """before the worker starts (or after it stopped) the webhook only stores and wakes."""
    config, store, purge_keys, secret = setup
    wake = asyncio.Event()
    worker = InboxWorker(store, None, purge_keys, wake)  # not running
    runner = await _serve(setup, wake, worker)
    try:
        user = user_id()
        body = envelope(config.webhook.bot_user_id, [event("follow", user, int(time.time()))])
        assert await _post(config, secret, body) == 200
        assert await store.read(_state, user) == (1, False)
        assert wake.is_set()
    finally:
        await runner.cleanup()


@pytest.mark.req("N1")
async def test_a_worker_behind_its_backlog_gets_no_inline_processing(setup: Setup) -> None:
    """N1: while the worker's last batch left events pending (a backlog: the daemon was busy),
    the webhook only stores new events and wakes the worker, so LINE's 200 never waits for
    a backlog batch; once a batch leaves nothing pending, events are processed inline again."""
    config, store, purge_keys, secret = setup
    wake = asyncio.Event()
    worker = InboxWorker(store, None, purge_keys, wake)
    worker.running = True
    worker.behind = True  # as after a batch that stopped with events still pending
    runner = await _serve(setup, wake, worker)
    try:
        first = user_id()
        body = envelope(config.webhook.bot_user_id, [event("follow", first, int(time.time()))])
        assert await _post(config, secret, body) == 200
        assert await store.read(_state, first) == (1, False)
        assert wake.is_set() and worker.processed == 0
        await worker.run_once()  # the worker catches up: nothing left pending
        assert not worker.behind and await store.read(_state, first) == (0, True)
        second = user_id()
        body = envelope(config.webhook.bot_user_id, [event("follow", second, int(time.time()))])
        assert await _post(config, secret, body) == 200
        assert await store.read(_state, second) == (0, True)  # inline again
        assert worker.processed == 2
    finally:
        await runner.cleanup()


class _Failing:
    """Processes the batch (writing its effects), then fails before the commit."""

    running = True
    behind = False

    def __init__(self, worker: InboxWorker) -> None:
        self.worker = worker
        self.taken: list[BatchResult] = []

    def process_in(self, conn: Connection) -> BatchResult:
        result = self.worker.process_in(conn)
        assert result.processed == 1
        raise RuntimeError("boom")

    def take(self, result: BatchResult) -> None:
        self.taken.append(result)


async def test_failed_inline_processing_is_undone_alone_and_the_event_stays_pending(
    setup: Setup,
) -> None:
    """a failure while processing inline undoes the processing only: the event is stored
    (LINE gets 200, no redelivery needed), still pending, and the worker is woken for it."""
    config, store, purge_keys, secret = setup
    wake = asyncio.Event()
    failing = _Failing(InboxWorker(store, None, purge_keys, wake))
    runner = await _serve(setup, wake, failing)
    try:
        user = user_id()
        body = envelope(config.webhook.bot_user_id, [event("follow", user, int(time.time()))])
        assert await _post(config, secret, body) == 200
        assert await store.read(_state, user) == (1, False)
        assert failing.taken == []
        assert wake.is_set()
    finally:
        await runner.cleanup()


@pytest.mark.req("N1")
async def test_no_inline_processing_while_a_delivery_is_being_sent(setup: Setup) -> None:
    """N1: while the sender sends (the sending gate closed), the webhook only stores events and
    the worker processes them in its own batches; once nothing is sent, inline again."""
    _, store, purge_keys, _ = setup
    app = web.Application()
    worker = InboxWorker(store, None, purge_keys, asyncio.Event())
    app[INBOX_INLINE] = worker
    gate = SendingGate(sender_present=True)  # closed until the sender finds nothing due
    app[SENDING_GATE] = gate
    assert inline_now(app) is None
    gate.idle()
    assert inline_now(app) is worker
    gate.sending()
    assert inline_now(app) is None

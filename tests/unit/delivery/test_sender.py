"""The sender against the LINE simulator: batches, retry keys, faults, 24 h, quota, cancel,
urgent first, unfollow mid-delivery."""

from __future__ import annotations

import asyncio
import json
import time
from array import array
from collections import Counter

import pytest

from kairand.delivery import service
from kairand.delivery.audience import warm_index
from kairand.delivery.errors import QuotaExceeded
from kairand.delivery.model import Status
from kairand.delivery.ratelimit import TokenBucket
from kairand.delivery.sender import KEY_LIFETIME_SECONDS, Sender
from kairand.keys.secrets import receipt_hmac_key, signing_key
from kairand.line.errors import classify
from kairand.retention.purge import purge_resident
from kairand.segments.compiler import CompiledSegment
from kairand.simulator import FaultProfile
from kairand.store import audit as audit_store
from kairand.store import deliveries as delivery_queries
from kairand.store import metrics, settings, synthetic
from kairand.store import segments as segment_queries
from kairand.store.database import Connection, Store
from tests.support.delivery_harness import (
    approved,
    fast_config,
    populate,
    run_sender,
    simulator,
)


def batches(store: Store, delivery_id: int) -> list[tuple]:
    return store.read_sync(
        lambda c: c.execute(
            "SELECT seq, retry_key, state, recipient_count, attempts, first_attempt_at"
            " FROM batches WHERE delivery_id = ? ORDER BY seq",
            (delivery_id,),
        ).fetchall()
    )


async def test_delivery_exactly_once_in_batches_of_500(store: Store) -> None:
    """N4, S10: the segment is frozen into batches of <= 500, each with its own stored uuid4
    retry key; every selected resident gets exactly one copy, nobody else any; counters,
    settings and audit entries (actor system) are written."""
    expected = populate(store, 2600)
    did = await approved(store, messages=("一通目", "二通目"), notification_disabled=True)
    async with simulator(2600) as line:
        await run_sender(Sender(store, line.api, fast_config()), store=store, delivery_ids=(did,))
        ledger = line.sim
    view = await service.get(store, did)
    assert view.status == Status.sent
    assert view.recipient_count == len(expected) == view.sent_count
    rows = batches(store, did)
    assert all(r[3] <= 500 for r in rows) and len(rows) == -(-len(expected) // 500)
    assert {r[1] for r in rows} == {m.retry_key for m in ledger.multicasts}
    received = ledger.received()
    assert set(received) == expected and set(received.values()) == {1}
    assert all(m.texts == ("一通目", "二通目") for m in ledger.multicasts)
    day = metrics.day_of(time.time())
    assert store.read_sync(metrics.series, "delivery_sent", day, day)[day] == len(expected)
    assert store.read_sync(settings.get, "line.last_ok_at") is not None
    entries = store.read_sync(lambda c: list(audit_store.iter_entries(c)))
    system = [e.entry.action for e in entries if e.entry.actor == "system"]
    assert system == ["delivery.send_start", "delivery.send_finish"]
    assert view.progress == 1.0


@pytest.mark.req("N4")
@pytest.mark.parametrize("seed", [1, 2])
async def test_recipients_frozen_in_chunks_while_sending_exactly_once(
    store: Store, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    """N4: the first batch is frozen with the delivery's start and the rest chunk by chunk
    while batches are sent: under faults every selected resident still gets exactly one copy,
    every batch has its retry key stored before its first request, and the delivery ends only
    once every recipient was frozen (its count is the frozen one)."""
    monkeypatch.setattr(delivery_queries, "FIRST_CHUNK_BATCHES", 1)
    monkeypatch.setattr(delivery_queries, "CHUNK_BATCHES", 2)
    expected = populate(store, 6000)
    did = await approved(store)
    faults = FaultProfile(error_ratio=0.2, lost_ratio=0.2, seed=seed)
    async with simulator(6000, seed=seed, faults=faults) as line:
        await run_sender(Sender(store, line.api, fast_config()), store=store, delivery_ids=(did,))
        received = line.sim.received()
        keys_used = {m.retry_key for m in line.sim.multicasts}
    view = await service.get(store, did)
    rows = batches(store, did)
    assert view.status == Status.sent
    assert set(received) == expected and set(received.values()) == {1}
    assert [r[0] for r in rows] == list(range(len(rows))) and len(rows) == -(-len(expected) // 500)
    assert keys_used == {r[1] for r in rows}
    assert view.recipient_count == len(expected) == view.sent_count
    assert store.read_sync(delivery_queries.freeze_cursor, did) is None


@pytest.mark.req("N4")
async def test_a_restart_mid_freezing_continues_from_the_cursor(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """N4: a daemon stopped after the first chunks were frozen and sent continues freezing
    after the last frozen resident: nobody twice, nobody skipped. The delivery's count is
    the snapshot's before every chunk is frozen."""
    monkeypatch.setattr(delivery_queries, "FIRST_CHUNK_BATCHES", 1)
    monkeypatch.setattr(delivery_queries, "CHUNK_BATCHES", 1)
    expected = populate(store, 20000)
    did = await approved(store)
    async with simulator(20000) as line:
        await run_sender(
            Sender(store, line.api, fast_config(multicast_rate_per_second=5.0, concurrency=1)),
            lambda: len(line.sim.multicasts) >= 2,
        )
        cursor = store.read_sync(delivery_queries.freeze_cursor, did)
        assert cursor is not None  # stopped with recipients still to freeze
        view = await service.get(store, did)
        assert view.status == Status.sending
        # The count is known once the rest was read, before it is frozen.
        assert view.recipient_count == len(expected)
        await run_sender(Sender(store, line.api, fast_config()), store=store, delivery_ids=(did,))
        received = line.sim.received()
    assert (await service.get(store, did)).status == Status.sent
    assert set(received) == expected and set(received.values()) == {1}


@pytest.mark.req("N4")
async def test_a_stale_pending_count_does_not_stall_the_freezing(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """N4: the freezer waits for a claim while a chunk is pending; when the count it read is
    stale (a claim took the pending batches meanwhile; the reader descheduled on a busy
    machine, 50 ms here) the claim still wakes it, and the delivery is frozen and sent to the
    end (before: the feeder waited for the freezer and the freezer for a claim, for ever)."""
    monkeypatch.setattr(delivery_queries, "FIRST_CHUNK_BATCHES", 2)
    monkeypatch.setattr(delivery_queries, "CHUNK_BATCHES", 2)
    pending = delivery_queries.pending_batches

    def stale_pending(conn: Connection, delivery_id: int) -> int:
        count = pending(conn, delivery_id)
        time.sleep(0.05)
        return count

    monkeypatch.setattr(delivery_queries, "pending_batches", stale_pending)
    expected = populate(store, 5000)
    did = await approved(store)
    async with simulator(5000) as line:
        config = fast_config(multicast_rate_per_second=1000, concurrency=4)
        await run_sender(
            Sender(store, line.api, config), store=store, delivery_ids=(did,), limit_seconds=10
        )
        received = line.sim.received()
    assert (await service.get(store, did)).status == Status.sent
    assert set(received) == expected and set(received.values()) == {1}


@pytest.mark.req("N4")
@pytest.mark.parametrize("index_ready", [True, False])
async def test_the_freeze_reads_the_audience_index_when_it_is_ready(
    store: Store, monkeypatch: pytest.MonkeyPatch, index_ready: bool
) -> None:
    """N4: with the audience index built and at most FREEZE_CATCH_UP changes behind, the
    delivery's snapshot comes from it (caught up in the start transaction: a resident stopped
    after the build gets nothing), never from the SQL; too far behind, the SQL selects. Either
    way every selected resident gets exactly one copy, the rest frozen chunk by chunk (from
    the index's compressed set, or the SQL's array)."""
    monkeypatch.setattr(delivery_queries, "FIRST_CHUNK_BATCHES", 1)
    monkeypatch.setattr(delivery_queries, "CHUNK_BATCHES", 1)
    expected = populate(store, 3000)
    did = await approved(store)
    await warm_index(store)
    stopped = sorted(expected)[::50]
    for resident in stopped:  # changes the index has not applied yet
        await store.write(synthetic.set_stopped, resident, True)
    expected -= set(stopped)
    if not index_ready:
        monkeypatch.setattr(segment_queries, "FREEZE_CATCH_UP", len(stopped) - 1)
    by_sql = []
    sql_ids = delivery_queries.segment_ids

    def spy(conn: Connection, compiled: CompiledSegment) -> array[int]:
        by_sql.append(compiled)
        return sql_ids(conn, compiled)

    monkeypatch.setattr(delivery_queries, "segment_ids", spy)
    async with simulator(3000) as line:
        await run_sender(Sender(store, line.api, fast_config()), store=store, delivery_ids=(did,))
        received = line.sim.received()
    assert (await service.get(store, did)).recipient_count == len(expected)
    assert set(received) == expected and set(received.values()) == {1}
    assert len(by_sql) == (0 if index_ready else 1)
    assert len(batches(store, did)) == -(-len(expected) // 500)


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_faults_never_duplicate_or_skip(store: Store, seed: int) -> None:
    """N4: with 5xx, lost responses (accepted, answer lost) and timeouts injected, the
    identical batch is retried with the same key; 409 counts as sent; exactly one copy each."""
    expected = populate(store, 3000)
    did = await approved(store)
    faults = FaultProfile(
        error_ratio=0.2, lost_ratio=0.2, timeout_ratio=0.15, hang_seconds=0.6, seed=seed
    )
    async with simulator(3000, client_timeout=0.3, seed=seed, faults=faults) as line:
        await run_sender(Sender(store, line.api, fast_config()), store=store, delivery_ids=(did,))
        received = line.sim.received()
        assert line.sim.requests > len(batches(store, did))  # faults did happen
    assert (await service.get(store, did)).status == Status.sent
    assert set(received) == expected and set(received.values()) == {1}


async def test_unconfirmed_for_24h_is_not_retried(store: Store) -> None:
    """N4: a batch still unconfirmed 24 h after its first attempt is never retried (LINE
    forgets keys): it is flagged needs_attention and the delivery says so."""
    populate(store, 300)
    did = await approved(store)
    async with simulator(300, faults=FaultProfile(error_ratio=1.0)) as line:
        await run_sender(
            Sender(store, line.api, fast_config()),
            lambda: line.sim.requests >= 3,
        )
        assert batches(store, did)[0][2] == "in_flight"
        requests_before = line.sim.requests
        line.sim.set_faults(FaultProfile())
        later = Sender(
            store, line.api, fast_config(), clock=lambda: time.time() + KEY_LIFETIME_SECONDS + 60
        )
        await run_sender(later, store=store, delivery_ids=(did,))
        assert line.sim.requests == requests_before
        assert line.sim.multicasts == []
    view = await service.get(store, did)
    assert view.status == Status.needs_attention and view.batches_needs_attention == 1


async def test_quota_refused_then_paused_then_resumed(store: Store) -> None:
    """N4: a delivery that would exceed a limited quota is refused at approval unless
    confirmed; the monthly-limit 429 pauses it as quota_exhausted; resume finishes it
    with nobody receiving twice."""
    expected = populate(store, 3000)
    async with simulator(3000, quota_limit=1200) as line:
        from kairand.delivery.model import DeliveryContent
        from tests.support.delivery_harness import IN_SEGMENT

        did = await service.create_draft(
            store, "tanaka", DeliveryContent(title="t", messages=("m",), segment=IN_SEGMENT)
        )
        await service.submit(store, did, "tanaka")
        with pytest.raises(QuotaExceeded):
            await service.approve(store, did, "suzuki", line=line.api)
        await service.approve(store, did, "suzuki", line=line.api, confirm_over_quota=True)
        sender = Sender(store, line.api, fast_config(concurrency=1))
        await run_sender(sender, store=store, delivery_ids=(did,))
        view = await service.get(store, did)
        assert view.status == Status.quota_exhausted
        assert 0 < view.sent_count <= 1200
        assert line.sim.usage <= 1200
        line.sim.set_quota(100_000)
        await service.resume(store, did, "suzuki")
        await run_sender(sender, store=store, delivery_ids=(did,))
        received = line.sim.received()
    assert (await service.get(store, did)).status == Status.sent
    assert set(received) == expected and set(received.values()) == {1}


async def test_sender_refuses_unconfirmed_over_quota(store: Store) -> None:
    """N4: approved without a quota check, the sender itself refuses to start a delivery
    that would exceed a limited quota (status quota_exhausted, nothing sent)."""
    populate(store, 900)
    did = await approved(store)
    async with simulator(900, quota_limit=10) as line:
        await run_sender(Sender(store, line.api, fast_config()), store=store, delivery_ids=(did,))
        assert line.sim.multicasts == []
    view = await service.get(store, did)
    assert view.status == Status.quota_exhausted and "10 left" in (view.status_reason or "")


async def test_cancel_stops_further_batches(store: Store) -> None:
    """N4: cancelling a sending delivery stops every batch not yet requested."""
    populate(store, 6000)
    did = await approved(store)
    async with simulator(6000) as line:
        sender = Sender(store, line.api, fast_config(multicast_rate_per_second=10, concurrency=1))
        await run_sender(sender, lambda: len(line.sim.multicasts) >= 2)
        await service.cancel(store, did, "suzuki")
        await run_sender(sender, store=store, delivery_ids=(did,))
        sent_requests = len(line.sim.multicasts)
        # One whole work cycle of the sender after the cancel (instead of waiting a while to
        # see nothing happen): it finds nothing due and LINE receives nothing more.
        assert await sender.step() is False
        assert len(line.sim.multicasts) == sent_requests
    view = await service.get(store, did)
    assert view.status == Status.cancelled
    assert view.batches_cancelled >= 1 and view.batches_pending == 0
    assert sent_requests < view.batch_total


async def test_urgent_jumps_the_queue(store: Store) -> None:
    """N4: an urgent delivery approved while another is sending goes out before the rest of
    the other one."""
    populate(store, 9000)
    normal = await approved(store)
    async with simulator(9000) as line:
        sender = Sender(store, line.api, fast_config(multicast_rate_per_second=20, concurrency=1))
        await run_sender(sender, lambda: len(line.sim.multicasts) >= 1)
        urgent = await approved(store, urgent=True, messages=("緊急",))
        await run_sender(sender, store=store, delivery_ids=(normal, urgent))
        order = ["urgent" if m.texts == ("緊急",) else "normal" for m in line.sim.multicasts]
    first_urgent = order.index("urgent")
    last_urgent = len(order) - 1 - order[::-1].index("urgent")
    assert "normal" in order[last_urgent + 1 :]  # the normal one finished after it
    assert (
        set(order[first_urgent : last_urgent + 1]) == {"urgent"}
        or order[first_urgent : last_urgent + 1].count("normal") <= 1
    )  # at most the batch already in flight


async def test_unfollow_mid_delivery(store: Store) -> None:
    """N4, S11: a resident purged mid-delivery is dropped from batches not yet attempted; a
    batch already attempted but unconfirmed is retried as the identical request (same key,
    same recipients, held for that purpose), and the held id is deleted once confirmed."""
    populate(store, 6000)
    did = await approved(store)
    async with simulator(6000, faults=FaultProfile(error_ratio=1.0)) as line:
        sender = Sender(store, line.api, fast_config(concurrency=1))
        await run_sender(sender, lambda: line.sim.requests >= 2)
        rows = batches(store, did)
        assert rows[0][2] == "in_flight"
        # (the next batch may already be claimed, in flight, before its request)
        pending_seq = next(r[0] for r in rows if r[2] == "pending")

        def members(conn, seq):
            return [
                r[0]
                for r in conn.execute(
                    "SELECT res.line_user_id FROM batch_recipients br JOIN batches b"
                    " ON b.id = br.batch_id JOIN residents res ON res.id = br.resident_id"
                    " WHERE b.delivery_id = ? AND b.seq = ? ORDER BY res.id",
                    (did, seq),
                )
            ]

        attempted = store.read_sync(members, 0)
        pending = store.read_sync(members, pending_seq)
        gone_attempted, gone_pending = attempted[3], pending[5]
        keys = await asyncio.to_thread(lambda: (receipt_hmac_key(), signing_key()))
        for gone in (gone_attempted, gone_pending):  # the real unfollow purge
            receipt = await store.write(purge_resident, gone, "unfollow", int(time.time()), *keys)
            assert receipt is not None
        # A bare row delete (FK cascade only) holds the id too.
        await store.write(synthetic.delete_resident, attempted[7])
        line.sim.set_faults(FaultProfile())
        await run_sender(sender, store=store, delivery_ids=(did,))
        by_key = {m.retry_key: m.to for m in line.sim.multicasts}
    key0, key1 = rows[0][1], rows[pending_seq][1]
    assert by_key[key0] == attempted  # identical, including the purged resident
    assert gone_pending not in by_key[key1] and len(by_key[key1]) == len(pending) - 1
    held = store.read_sync(
        lambda c: c.execute("SELECT count(*) FROM batch_recipients_held").fetchone()[0]
    )
    assert held == 0
    received: Counter[str] = Counter()
    for to in by_key.values():
        received.update(to)
    assert set(received.values()) == {1}


def test_classify_line_answers() -> None:
    """N4: 409 with an accepted request id is sent; 5xx/timeout retry; 429 rate vs monthly
    limit told apart by message; other 4xx fail with the reason."""
    from linebot.v3.messaging import ApiException

    def exc(status, message, headers=None):
        e = ApiException(status=status, reason="x")
        e.body = json.dumps({"message": message}).encode()
        e.headers = headers or {}
        return e

    assert classify(exc(409, "x", {"X-Line-Accepted-Request-Id": "r1"})).kind in ("sent",)
    assert classify(exc(409, "x", {"x-line-accepted-request-id": "r1"})).accepted_request_id == "r1"
    assert classify(exc(500, "boom")).kind == "retry"
    assert classify(TimeoutError()).kind == "retry"
    assert (
        classify(exc(429, "The API rate limit has been exceeded. Try again later.")).kind == "rate"
    )
    assert classify(exc(429, "You have reached your monthly limit.")).kind == "quota"
    verdict = classify(exc(400, "The request body has 1 error(s)"))
    assert verdict.kind == "failed" and "400" in verdict.detail


async def test_token_bucket_holds_the_rate() -> None:
    """N4: the limiter admits at most rate x time (+ a small burst)."""
    bucket = TokenBucket(200.0)
    start = time.monotonic()
    for _ in range(100):
        await bucket.acquire()
    elapsed = time.monotonic() - start
    assert elapsed >= (100 - bucket.burst) / 200.0 * 0.95


async def test_rate_limit_429_backs_off_and_still_exactly_once(store: Store) -> None:
    """N4: when LINE answers 429 "rate limit" (the simulator limited to 5 multicasts/s while
    the sender is allowed 50/s), the sender backs off and retries; nobody gets two copies."""
    expected = populate(store, 6000)
    did = await approved(store)
    async with simulator(6000, rates={"multicast": 5.0}) as line:
        sender = Sender(store, line.api, fast_config(multicast_rate_per_second=50, concurrency=4))
        await run_sender(sender, store=store, delivery_ids=(did,))
        received = line.sim.received()
        accepted = len(line.sim.multicasts)
        assert line.sim.requests > accepted  # some were refused with 429
    assert (await service.get(store, did)).status == Status.sent
    assert set(received) == expected and set(received.values()) == {1}


async def test_notification_disabled_and_retry_key_on_the_wire(store: Store) -> None:
    """N4: the multicast body carries notificationDisabled and 1–5 text messages, and the
    X-Line-Retry-Key header is the batch's stored uuid4."""
    import uuid

    from aiohttp import web

    from kairand.line.client import line_api

    seen: list[tuple[dict, str | None]] = []

    async def multicast(request: web.Request) -> web.Response:
        seen.append((await request.json(), request.headers.get("X-Line-Retry-Key")))
        return web.json_response({})

    async def quota(request: web.Request) -> web.Response:
        return web.json_response({"type": "none"})

    async def consumption(request: web.Request) -> web.Response:
        return web.json_response({"totalUsage": 0})

    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.router.add_post("/v2/bot/message/multicast", multicast)
    app.router.add_get("/v2/bot/message/quota", quota)
    app.router.add_get("/v2/bot/message/quota/consumption", consumption)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    populate(store, 60)
    did = await approved(store, messages=("一", "二"), notification_disabled=True)
    try:
        async with line_api(f"http://127.0.0.1:{port}", "token", 2.0) as api:
            await run_sender(Sender(store, api, fast_config()), store=store, delivery_ids=(did,))
    finally:
        await runner.cleanup()
    assert len(seen) == 1
    body, key = seen[0]
    assert body["notificationDisabled"] is True
    assert [m["text"] for m in body["messages"]] == ["一", "二"]
    assert key == batches(store, did)[0][1] and uuid.UUID(key).version == 4


def test_multicast_body_is_the_sdks() -> None:
    """The sender serialises its unvalidated request itself (kairand.delivery.sender's
    _Multicast): the JSON is byte for byte the SDK's, from a validated MulticastRequest, for
    each kind of message and both notification settings."""
    from linebot.v3.messaging import ApiClient, Message, MulticastRequest

    from kairand.delivery.sender import _Multicast

    messages = [
        Message.from_dict(d)
        for d in (
            {"type": "text", "text": "一\n二"},
            {"type": "sticker", "packageId": "446", "stickerId": "1988"},
            {
                "type": "image",
                "originalContentUrl": "https://example.jp/a.jpg",
                "previewImageUrl": "https://example.jp/a-p.jpg",
            },
            {"type": "flex", "altText": "案内", "contents": {"type": "bubble", "body": {
                "type": "box", "layout": "vertical",
                "contents": [{"type": "text", "text": "本文", "wrap": True}]}}},
        )
    ]  # fmt: skip
    to = [f"U{i:032x}" for i in range(500)]
    client = ApiClient.__new__(ApiClient)  # sanitize_for_serialization needs no state
    for disabled in (True, False):
        ours = _Multicast.construct(to=to, messages=messages, notification_disabled=disabled)
        sdk = MulticastRequest(to=to, messages=messages, notification_disabled=disabled)
        assert json.dumps(client.sanitize_for_serialization(ours)) == json.dumps(
            client.sanitize_for_serialization(sdk)
        )


BAD_IDS = ("hello-world", "U" + "x" * 5000, "U" + "0" * 31 + "\x00")


@pytest.mark.req("N4")
@pytest.mark.parametrize("bad", BAD_IDS, ids=["word", "5000-chars", "nul"])
async def test_one_bad_user_id_does_not_fail_the_batch(store: Store, bad: str) -> None:
    """N4: a resident row whose LINE id is not a LINE id (stored before the webhook refused
    them) makes LINE refuse the whole multicast (400: nothing sent). The sender isolates it —
    splitting the batch under new retry keys, stored before any request — and delivers to
    everyone else exactly once; only that recipient fails (once: 0/70 sent)."""
    expected = populate(store, 100)
    store.write_sync(
        synthetic.insert_residents,
        [synthetic.SyntheticResident(bad, choices={"area": ["asahi"]})],
        int(time.time()),
    )
    did = await approved(store)
    async with simulator(100) as line:
        await run_sender(Sender(store, line.api, fast_config()), store=store, delivery_ids=(did,))
        received = line.sim.received()
        keys = [m.retry_key for m in line.sim.multicasts]
    view = await service.get(store, did)
    assert set(received) == expected and set(received.values()) == {1}
    assert view.status == Status.partially_failed
    assert (view.sent_count, view.failed_count) == (len(expected), 1)
    assert len(keys) == len(set(keys))  # each accepted request had its own key
    stored_keys = {r[1] for r in batches(store, did)}
    assert set(keys) <= stored_keys  # every key was stored before it was sent
    failed = [r for r in batches(store, did) if r[2] == "failed"]
    assert [r[3] for r in failed] == [1]


@pytest.mark.req("N4")
async def test_bisects_when_line_does_not_name_the_recipient(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """N4: when LINE's 400 blames `to` without naming a position, the batch is bisected (each
    half a new batch with a new key) until the bad recipient is alone; the 600 others get
    exactly one copy each."""
    from kairand.simulator import limits
    from kairand.simulator.spec import ErrorDetail

    def unnamed(to: object, where: str = "to") -> list[ErrorDetail]:
        return [ErrorDetail("Invalid user ID", where)] if bad_id in str(to) else []

    bad_id = "not-a-line-id"
    monkeypatch.setattr(limits, "recipient_details", unnamed)
    expected = populate(store, 900)
    store.write_sync(
        synthetic.insert_residents,
        [synthetic.SyntheticResident(bad_id, choices={"area": ["minato"]})],
        int(time.time()),
    )
    did = await approved(store)
    async with simulator(900) as line:
        await run_sender(Sender(store, line.api, fast_config()), store=store, delivery_ids=(did,))
        received = line.sim.received()
        requests = line.sim.requests
    view = await service.get(store, did)
    assert set(received) == expected and set(received.values()) == {1}
    assert (view.sent_count, view.failed_count) == (len(expected), 1)
    assert view.progress == 1.0
    assert requests < 40  # bisection: about 2 x log2(500) extra requests, not one per resident


@pytest.mark.req("N4")
def test_a_400_about_the_messages_is_not_blamed_on_recipients() -> None:
    """Only a refusal about `to` splits a batch; a bad message fails it as before."""
    from linebot.v3.messaging import ApiException

    def refused(body: dict[str, object]) -> ApiException:
        exc = ApiException(status=400, reason="Bad Request")
        exc.body = json.dumps(body)
        return exc

    about_to = classify(
        refused({"message": "bad", "details": [{"message": "Invalid", "property": "to[7]"}]})
    )
    assert about_to.recipients_refused and about_to.refused_indexes == (7,)
    text = classify(
        refused({"message": "bad", "details": [{"message": "x", "property": "messages[0].text"}]})
    )
    assert not text.recipients_refused
    mixed = refused(
        {
            "message": "bad",
            "details": [
                {"message": "Invalid", "property": "to[1]"},
                {"message": "x", "property": "messages[0].text"},
            ],
        }
    )
    assert not classify(mixed).recipients_refused
    worded = classify(refused({"message": "The value for the 'to' field is not valid"}))
    assert worded.recipients_refused and worded.refused_indexes == ()

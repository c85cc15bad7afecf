"""The inbox worker's batch transaction (kairand.line.inbox.process_batch) on a real store."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest

from kairand.config import Config
from kairand.conversation import machine
from kairand.conversation.events import Event
from kairand.conversation.survey import SurveyDefinition
from kairand.keys import secrets as keys
from kairand.line import inbox as worker
from kairand.store import inbox, metrics, residents
from kairand.store.bootstrap import open_store
from kairand.store.database import Connection, Store


def _user() -> str:
    return "U" + secrets.token_hex(16)


def _incoming(kind: str, user: str, ts: int, **extra: object) -> inbox.IncomingEvent:
    body: dict[str, Any] = {
        "type": kind,
        "mode": "active",
        "timestamp": ts,
        "source": {"type": "user", "userId": user},
        "webhookEventId": secrets.token_hex(13),
        "deliveryContext": {"isRedelivery": False},
        "replyToken": secrets.token_hex(16),
        **extra,
    }
    return inbox.IncomingEvent(body["webhookEventId"], user, kind, ts, json.dumps(body))


@pytest.fixture
def store(config: Config) -> Iterator[Store]:
    s = open_store(config)
    yield s
    s.close()


def _keys() -> worker.PurgeKeys:
    return worker.PurgeKeys(keys.receipt_hmac_key(), keys.signing_key())


def _rows(conn: Connection) -> list[tuple[str, str | None, str]]:
    return conn.execute("SELECT state, line_user_id, body FROM inbox ORDER BY id").fetchall()


def test_failing_event_is_isolated_and_others_are_done(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """N1: an event whose processing raises is rolled back alone and marked failed (body and
    sender emptied); the other events of the batch commit with their effects."""
    users = [_user() for _ in range(3)]
    store.write_sync(
        inbox.insert_events, [_incoming("follow", u, i) for i, u in enumerate(users)], time.time()
    )
    original = machine.handle

    def handle(
        event: Event,
        resident: machine.ResidentState | None,
        survey: SurveyDefinition,
        version: int,
        **kwargs: Any,
    ) -> machine.Outcome:
        if event.user_id == users[1]:
            raise ValueError("boom")
        return original(event, resident, survey, version, **kwargs)

    monkeypatch.setattr(machine, "handle", handle)
    result = store.write_sync(worker.process_batch, 10, time.time(), _keys(), False)
    assert (result.processed, result.failed, len(result.replies)) == (3, 1, 2)
    assert store.read_sync(_rows) == [("done", None, ""), ("failed", None, ""), ("done", None, "")]
    assert [store.read_sync(residents.flags_of, u) is not None for u in users] == [
        True,
        False,
        True,
    ]


def test_a_batch_that_does_not_commit_leaves_everything_pending(store: Store) -> None:
    """N1 crash safety: effects and done-marks share one transaction — if it never commits
    (a kill before COMMIT), no effect is applied and every event is still pending."""
    user = _user()
    store.write_sync(inbox.insert_events, [_incoming("follow", user, 1)], time.time())

    def crash_before_commit(conn: Connection) -> None:
        worker.process_batch(conn, 10, time.time(), _keys(), False)
        raise KeyboardInterrupt  # stands in for the process dying inside the transaction

    with pytest.raises(KeyboardInterrupt):
        store.write_sync(crash_before_commit)
    assert store.read_sync(inbox.count_pending) == 1
    assert store.read_sync(residents.flags_of, user) is None
    result = store.write_sync(worker.process_batch, 10, time.time(), _keys(), False)
    assert result.processed == 1 and store.read_sync(residents.flags_of, user) is not None
    again = store.write_sync(worker.process_batch, 10, time.time(), _keys(), False)
    assert again.processed == 0  # nothing is processed twice


def test_unknown_types_and_group_events_are_ignored(store: Store) -> None:
    """LINE adds event types without notice; group/room events are not Kairan's: 'ignored'."""
    user = _user()
    unknown = _incoming("membership", user, 1)
    group_body = json.loads(_incoming("message", user, 2).body)
    group_body["source"] = {"type": "group", "groupId": "C" + "0" * 32}
    group = inbox.IncomingEvent("g1", None, "message", 2, json.dumps(group_body))
    store.write_sync(inbox.insert_events, [unknown, group], time.time())
    result = store.write_sync(worker.process_batch, 10, time.time(), _keys(), False)
    assert result.replies == [] and [r[0] for r in store.read_sync(_rows)] == [
        "ignored",
        "ignored",
    ]


def test_store_display_name_asks_for_the_profile_only_when_configured(store: Store) -> None:
    """W6: the profile is wanted only with privacy.store_display_name."""
    a, b = _user(), _user()
    store.write_sync(inbox.insert_events, [_incoming("follow", a, 1)], time.time())
    off = store.write_sync(worker.process_batch, 10, time.time(), _keys(), False)
    store.write_sync(inbox.insert_events, [_incoming("follow", b, 2)], time.time())
    on = store.write_sync(worker.process_batch, 10, time.time(), _keys(), True)
    assert off.want_profile == [] and on.want_profile == [b]


def test_processed_rows_can_be_pruned_pending_ones_never(store: Store) -> None:
    """Processed inbox rows (dedupe keys only) can be pruned by age; pending ones are kept."""
    store.write_sync(inbox.insert_events, [_incoming("follow", _user(), 1)], 1000)
    store.write_sync(worker.process_batch, 10, time.time(), _keys(), False)
    store.write_sync(inbox.insert_events, [_incoming("follow", _user(), 2)], 1000)
    assert store.write_sync(inbox.prune_processed, 2000) == 1
    assert store.read_sync(inbox.counts) == {"pending": 1}


def _replies_text(result: worker.BatchResult) -> list[str]:
    return [m["text"] for r in result.replies for m in r.messages]


@pytest.mark.req("N1")
def test_a_two_day_old_postback_is_refused_politely_not_applied(store: Store) -> None:
    """N1: a postback whose event timestamp is two days old (max age one day) is answered with
    the polite refusal for old buttons and not stored as an answer; a fresh one is."""
    from kairand.conversation import texts

    user = _user()
    now = time.time()
    now_ms = int(now * 1000)
    store.write_sync(inbox.insert_events, [_incoming("follow", user, now_ms - 10_000)], now)
    store.write_sync(worker.process_batch, 10, now, _keys(), False, 86400)
    consent = "a=consent&v=1&o=yes"
    old = _incoming("postback", user, now_ms - 2 * 86_400_000, postback={"data": consent})
    store.write_sync(inbox.insert_events, [old], now)
    result = store.write_sync(worker.process_batch, 10, now, _keys(), False, 86400)
    assert texts.STALE in _replies_text(result)[0]
    flags = store.read_sync(residents.flags_of, user)
    assert flags is not None and flags["consent_version"] is None
    fresh = _incoming("postback", user, now_ms - 1000, postback={"data": consent})
    store.write_sync(inbox.insert_events, [fresh], now)
    store.write_sync(worker.process_batch, 10, now, _keys(), False, 86400)
    flags = store.read_sync(residents.flags_of, user)
    assert flags is not None and flags["consent_version"] == 1


@pytest.mark.req("N1")
def test_buttons_shown_record_their_survey_version(store: Store) -> None:
    """N1: whatever is shown to a resident records the survey version of its buttons, so a
    postback of a version they were never shown can be told apart."""
    user = _user()
    now = time.time()
    store.write_sync(inbox.insert_events, [_incoming("follow", user, 1)], now)
    store.write_sync(worker.process_batch, 10, now, _keys(), False)
    loaded = store.read_sync(residents.load, user)
    assert loaded is not None and loaded[1].survey_version == 1


@pytest.mark.req("N4")
def test_a_stored_event_with_an_invalid_user_id_never_becomes_a_resident(store: Store) -> None:
    """N4: an event stored before the webhook refused non-LINE ids (an upgrade with a backlog)
    is ignored and counted by the worker; no resident is created."""
    from kairand.store import metrics

    bad = "hello-world"
    store.write_sync(inbox.insert_events, [_incoming("follow", bad, 1)], time.time())
    result = store.write_sync(worker.process_batch, 10, time.time(), _keys(), False)
    assert result.replies == [] and store.read_sync(residents.flags_of, bad) is None
    assert [r[0] for r in store.read_sync(_rows)] == ["ignored"]
    today = metrics.day_of(time.time())
    assert store.read_sync(metrics.series, "inbox_invalid_user_id", today, today) == {today: 1}


def test_a_batch_ends_early_for_an_urgent_write_and_the_rest_stays_pending(store: Store) -> None:
    """A webhook's events wait for their ack behind the batch running on the writer: the batch
    commits what it has done as soon as an urgent write is queued, in event order, and the
    rest is processed by the next batch (nothing skipped, nothing twice)."""
    users = [_user() for _ in range(5)]
    store.write_sync(
        inbox.insert_events, [_incoming("follow", u, i) for i, u in enumerate(users)], time.time()
    )
    asks: list[int] = []

    def urgent_after_two() -> bool:
        asks.append(1)
        return len(asks) >= 2

    first = store.write_sync(
        lambda conn: worker.process_batch(
            conn, 10, time.time(), _keys(), False, yield_to=urgent_after_two
        )
    )
    assert (first.processed, first.more) == (2, True)
    assert [r[0] for r in store.read_sync(_rows)] == ["done", "done", *["pending"] * 3]
    rest = store.write_sync(worker.process_batch, 10, time.time(), _keys(), False)
    assert (rest.processed, rest.more) == (3, False)
    assert all(store.read_sync(residents.flags_of, u) is not None for u in users)


def test_a_batch_counts_its_events_once_and_a_failed_event_not_at_all(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daily "follow" count is written once per batch (not once per event); an event whose
    processing fails is undone with its count."""
    users = [_user() for _ in range(3)]
    store.write_sync(
        inbox.insert_events, [_incoming("follow", u, i) for i, u in enumerate(users)], time.time()
    )
    real = residents.set_conversation
    calls: list[int] = []

    def second_fails(conn: Connection, *args: Any) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("boom")
        real(conn, *args)

    monkeypatch.setattr(residents, "set_conversation", second_fails)
    statements: list[str] = []
    conn = store.raw_writer()
    conn.set_trace_callback(statements.append)
    try:
        result = store.write_sync(worker.process_batch, 10, time.time(), _keys(), False)
    finally:
        conn.set_trace_callback(None)
    assert (result.processed, result.failed) == (3, 1)
    today = metrics.day_of(time.time())
    assert store.read_sync(metrics.series, "follow", today, today) == {today: 2}
    assert sum("INTO daily_counts" in sql and "'follow'" in sql for sql in statements) == 1
    assert [r[0] for r in store.read_sync(_rows)] == ["done", "failed", "done"]


def test_bodies_are_stored_with_duplicates_ignored_and_counted_per_body(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One group commit of several bodies: each body's new events are counted, a redelivered
    event (same webhookEventId, within a body or across them) is stored once, and a body
    longer than one multi-row INSERT is stored whole."""
    monkeypatch.setattr(inbox, "ROWS_PER_INSERT", 3)
    first = [_incoming("follow", _user(), i) for i in range(7)]
    again = [first[2], _incoming("follow", _user(), 8), first[5], first[5]]
    added = store.write_sync(inbox.insert_bodies, [first, again, []], time.time())
    assert added == [7, 1, 0]
    assert store.write_sync(inbox.insert_events, first[:4], time.time()) == 0
    assert store.read_sync(inbox.count_pending) == 8
    today = metrics.day_of(time.time())
    assert store.read_sync(metrics.series, "webhook_event", today, today) == {today: 8}


def test_pending_events_come_out_oldest_first_by_index(store: Store) -> None:
    """The inbox hands out pending events by (event_timestamp, id) through an index, without
    sorting the backlog (migration 22)."""
    users = [_user() for _ in range(3)]
    store.write_sync(
        inbox.insert_events,
        [_incoming("follow", u, ts) for u, ts in zip(users, (30, 10, 20), strict=True)],
        time.time(),
    )
    rows = store.read_sync(inbox.pending, 10)
    assert [r.event_timestamp for r in rows] == [10, 20, 30]
    plan = store.read_sync(
        lambda conn: conn.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM inbox WHERE state = 'pending'"
            " ORDER BY event_timestamp, id LIMIT 5"
        ).fetchall()
    )
    details = " ".join(str(row[-1]) for row in plan)
    assert "inbox_pending_order" in details and "TEMP B-TREE" not in details


@pytest.mark.parametrize(("limit", "processed", "more"), [(200, 40, False), (20, 20, True)])
def test_a_batch_reads_the_backlog_a_chunk_at_a_time_in_order(
    store: Store, monkeypatch: pytest.MonkeyPatch, limit: int, processed: int, more: bool
) -> None:
    """Pending events are read PENDING_CHUNK at a time (a batch under a backlog ends after a
    few events): across chunks every event is processed once, oldest first, up to the limit,
    and only the chunks needed are read."""
    users = [_user() for _ in range(40)]
    store.write_sync(
        inbox.insert_events,
        [_incoming("follow", u, 1000 - i) for i, u in enumerate(users)],  # newest inserted first
        time.time(),
    )
    reads: list[int] = []
    pending = inbox.pending

    def counted(conn: Connection, n: int) -> list[inbox.PendingEvent]:
        rows = pending(conn, n)
        reads.append(len(rows))
        return rows

    monkeypatch.setattr(inbox, "pending", counted)
    order: list[str] = []
    start = residents.start

    def started(conn: Connection, user: str, now: int) -> int:
        order.append(user)
        return start(conn, user, now)

    monkeypatch.setattr(residents, "start", started)
    result = store.write_sync(worker.process_batch, limit, time.time(), _keys(), False)
    assert (result.processed, result.more) == (processed, more)
    assert order == users[::-1][:processed]  # oldest event first
    assert max(reads) == worker.PENDING_CHUNK and sum(reads) == processed
    states = [r[0] for r in store.read_sync(_rows)]
    assert states.count("done") == processed and states.count("pending") == 40 - processed


def test_bodies_stored_in_one_transaction_count_each_body_and_the_metric_once(
    store: Store,
) -> None:
    """The webhook's group commit stores several bodies in one transaction: each body's new
    events are counted (a redelivered event is not new), the day's webhook_event metric
    gets their sum and webhook.last_seen_at the time, as if stored one body at a time."""
    from kairand.store import metrics, settings

    now = time.time()
    first = [_incoming("follow", _user(), 1), _incoming("follow", _user(), 2)]
    second = [first[0], _incoming("follow", _user(), 3)]
    assert store.write_sync(inbox.insert_bodies, [first, second, []], now) == [2, 1, 0]
    assert store.write_sync(inbox.insert_events, [_incoming("follow", _user(), 4)], now) == 1
    today = metrics.day_of(now)
    assert store.read_sync(metrics.series, "webhook_event", today, today) == {today: 4}
    assert store.read_sync(settings.get, "webhook.last_seen_at") == int(now)
    assert len(store.read_sync(inbox.pending, 10)) == 4

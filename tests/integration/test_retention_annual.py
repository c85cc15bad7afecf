"""Annual expiry (K2) end to end on a real SQLCipher store with a fixed clock: the boundary,
catch-up after downtime, the one re-registration push, receipts and the daemon component."""

from __future__ import annotations

import asyncio
import uuid

from aiohttp import web

from kairand.config import Config
from kairand.keys import secrets
from kairand.line.client import line_api
from kairand.retention import worker
from kairand.retention.receipts import subject_hmac, verify_receipt
from kairand.retention.rules import Annual, RetentionRule, RetentionRules
from kairand.simulator import Simulator, SimulatorConfig
from kairand.store import receipts, residents, settings
from kairand.store import retention as retention_store
from kairand.store.database import Connection, Store
from tests.support.retention_support import add_resident, push_stand_in, t

ANNUAL = RetentionRules(rules=(RetentionRule(scope="registration", policy=Annual()),))


def _population(conn: Connection) -> None:
    retention_store.save_rules(conn, ANNUAL, "admin", t(2026, 4, 1))
    add_resident(
        conn,
        "Ualice",
        followed=t(2026, 5, 1),
        registered=t(2026, 5, 1, 0, 5),
        answers={"area": ["honmachi"], "topics": ["bousai", "kosodate"]},
    )
    add_resident(
        conn,
        "Ubob",
        followed=t(2026, 6, 1),
        registered=t(2026, 6, 1),
        answers={"area": ["ekimae"]},
        stopped=True,
    )
    add_resident(conn, "Ucarol", followed=t(2026, 7, 1))  # never finished the survey
    add_resident(
        conn,
        "Udave",
        followed=t(2027, 3, 31, 23, 50),
        registered=t(2027, 3, 31, 23, 58),
        answers={"area": ["kawabe"]},
    )


def _present(conn: Connection) -> list[str]:
    return [
        uid
        for uid in ("Ualice", "Ubob", "Ucarol", "Udave", "Ueve")
        if residents.flags_of(conn, uid) is not None
    ]


async def test_annual_expiry_boundary_and_single_notice(store: Store) -> None:
    """K2, S11: registrations are destroyed at 31 March 23:59 JST — not a second earlier —
    with a signed annual_expiry receipt each; the March re-registration push goes once, in
    Japanese, only to registered residents who receive deliveries, and nothing after."""
    store.write_sync(_population)
    hmac_key = await asyncio.to_thread(secrets.receipt_hmac_key)
    async with push_stand_in() as line_stub, line_api(line_stub.url, "token") as line:
        result = await worker.run_once(store, line, t(2027, 2, 28, 10))
        assert not result.expired and not line_stub.received

        result = await worker.run_once(store, line, t(2027, 3, 1, 10))
        assert result.notices["sent"] == 2
        assert sorted(r["to"] for r in line_stub.received) == ["Ualice", "Udave"]
        (text,) = line_stub.texts_to("Ualice")
        assert "2027年3月31日（水）23時59分" in text and "改めてご登録" in text
        for request in line_stub.received:
            uuid.UUID(str(request["retry_key"]))

        # Daily runs later in March send nothing again.
        for day in (2, 15, 31):
            await worker.run_once(store, line, t(2027, 3, day, 3))
        await worker.run_once(store, line, t(2027, 3, 31, 23, 58, 59))
        assert len(line_stub.received) == 2
        assert store.read_sync(_present) == ["Ualice", "Ubob", "Ucarol", "Udave"]

        result = await worker.run_once(store, line, t(2027, 3, 31, 23, 59))
        assert result.expired == {"annual_expiry.registrations": 4}
        assert store.read_sync(_present) == []
        # After the boundary: a new registration is kept, and nobody gets a push.
        store.write_sync(
            lambda c: add_resident(
                c, "Ueve", followed=t(2027, 4, 1, 9), registered=t(2027, 4, 1, 9, 5)
            )
        )
        for day in (1, 2, 20):
            await worker.run_once(store, line, t(2027, 4, day, 10))
        assert store.read_sync(_present) == ["Ueve"]
        assert len(line_stub.received) == 2

    stored = store.read_sync(receipts.between, t(2027, 1, 1), t(2027, 5, 1))
    assert sorted(r.reason for r in stored) == ["annual_expiry"] * 4
    public = (await asyncio.to_thread(secrets.signing_key)).public_key()
    assert all(verify_receipt(r, public) for r in stored)
    alice = store.read_sync(receipts.for_subject, subject_hmac(hmac_key, "Ualice"))
    assert len(alice) == 1 and alice[0].deleted["answers"] == 3


async def test_catch_up_after_a_month_of_downtime(store: Store) -> None:
    """K2: the daemon ran last on 20 March and comes back on 20 April: the missed boundary is
    applied exactly once (one receipt per registration), later registrations survive, and no
    notice is sent after the boundary even to residents who never got one."""
    store.write_sync(_population)
    store.write_sync(settings.put, retention_store.LAST_RUN_KEY, t(2027, 2, 20, 3))
    async with push_stand_in() as line_stub, line_api(line_stub.url, "token") as line:
        store.write_sync(
            lambda c: add_resident(
                c, "Ueve", followed=t(2027, 4, 20, 8), registered=t(2027, 4, 20, 8, 30)
            )
        )
        first = await worker.run_once(store, line, t(2027, 4, 20, 9))
        second = await worker.run_once(store, line, t(2027, 4, 20, 9, 1))
        await worker.run_once(store, line, t(2027, 4, 21, 3))
        assert first.expired == {"annual_expiry.registrations": 4}
        assert not second.expired
        assert store.read_sync(_present) == ["Ueve"]
        assert line_stub.received == []
    stored = store.read_sync(receipts.between, 0, t(2030, 1, 1))
    assert len(stored) == 4
    hmac_key = await asyncio.to_thread(secrets.receipt_hmac_key)
    assert {r.subject_hmac for r in stored} == {
        subject_hmac(hmac_key, u) for u in ("Ualice", "Ubob", "Ucarol", "Udave")
    }
    assert store.read_sync(settings.get, retention_store.LAST_RUN_KEY) == t(2027, 4, 21, 3)


async def test_notice_retry_reuses_key_and_409_counts_as_sent(store: Store) -> None:
    """K2: a failed push (5xx) is retried with the same retry key on the next run; a 409 for
    that key means LINE already accepted it, so it counts as sent and is never sent again."""
    store.write_sync(_population)
    async with push_stand_in() as line_stub, line_api(line_stub.url, "token") as line:
        line_stub.fail_next = [500, 500]
        result = await worker.run_once(store, line, t(2027, 3, 1, 10))
        assert result.notices == {"retry": 2}
        line_stub.fail_next = [409]
        result = await worker.run_once(store, line, t(2027, 3, 2, 3))
        assert result.notices == {"sent": 2}
        await worker.run_once(store, line, t(2027, 3, 3, 3))
    keys_by_user: dict[str, set[str]] = {}
    for request in line_stub.received:
        keys_by_user.setdefault(str(request["to"]), set()).add(str(request["retry_key"]))
    assert len(line_stub.received) == 4
    assert all(len(keys) == 1 for keys in keys_by_user.values())
    counts = store.read_sync(retention_store.notice_counts)
    assert counts == {("2027-03-31T23:59+09:00", "sent"): 2}


async def test_question_rule_expires_only_that_question(store: Store) -> None:
    """K2: an annual rule on one question deletes only those answers (with a receipt naming
    the question, not the values); the registration and other answers stay."""
    rules = RetentionRules(
        rules=(RetentionRule(scope="question", question="area", policy=Annual()),)
    )
    store.write_sync(retention_store.save_rules, rules, "admin", t(2026, 4, 1))
    store.write_sync(
        lambda c: add_resident(
            c,
            "Ualice",
            followed=t(2026, 5, 1),
            registered=t(2026, 5, 1),
            answers={"area": ["honmachi"], "topics": ["bousai"]},
        )
    )
    result = await worker.run_once(store, None, t(2027, 4, 1, 3))
    assert result.expired == {"annual_expiry.answer_sets": 1}
    answers = store.read_sync(residents.answers_of, "Ualice")
    assert answers == {"topics": [("bousai", None)]}
    (receipt,) = store.read_sync(receipts.between, 0, t(2030, 1, 1))
    assert receipt.deleted == {
        "answers": 1,
        "question": "area",
        "boundary": "2027-03-31T23:59+09:00",
    }
    again = await worker.run_once(store, None, t(2027, 4, 2, 3))
    assert not again.expired


def test_retention_component_is_a_daemon_component() -> None:
    """K2: the daemon starts the retention worker with its other components."""
    from kairand.daemon import components

    assert worker.retention_component in components()


async def test_retention_component_catches_up_at_start(config: Config, store: Store) -> None:
    """K2: the daemon's retention component runs once at start with the stored last run, so a
    restart after the boundary applies it; the run is remembered in settings."""
    from kairand.daemon import CONFIG, STOPPING, STORE, _tasks_ctx

    store.write_sync(_population)
    store.write_sync(settings.put, retention_store.LAST_RUN_KEY, t(2027, 3, 20, 3))
    app = web.Application()
    app[CONFIG] = config
    app[STORE] = store
    app[STOPPING] = asyncio.Event()
    app[worker.CLOCK] = lambda: float(t(2027, 4, 3, 12))
    app.cleanup_ctx.append(_tasks_ctx)
    app.cleanup_ctx.append(worker.retention_component)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        for _ in range(200):
            if app[worker.RUNS]:
                break
            await asyncio.sleep(0.02)
        (run,) = app[worker.RUNS]
        assert run.expired == {"annual_expiry.registrations": 4}
    finally:
        app[STOPPING].set()
        await runner.cleanup()
    assert store.read_sync(settings.get, retention_store.LAST_RUN_KEY) == t(2027, 4, 3, 12)


async def test_notice_through_the_line_simulator(store: Store) -> None:
    """K2: against the LINE Platform simulator (real line-bot-sdk, its push endpoint validated
    against LINE's OpenAPI spec), the re-registration notice reaches exactly the registered,
    receiving residents, once each, with a retry key, and nobody after the boundary."""
    config = SimulatorConfig(seed=9, population=4, auto_react=False, redelivery=False)
    async with Simulator(config) as sim:
        followers = [r.user_id for r in sim.follow(4)]
        receiving, stopped, unregistered, late = followers

        def population(conn: Connection) -> None:
            retention_store.save_rules(conn, ANNUAL, "admin", t(2026, 4, 1))
            add_resident(conn, receiving, followed=t(2026, 5, 1), registered=t(2026, 5, 1))
            add_resident(
                conn, stopped, followed=t(2026, 5, 1), registered=t(2026, 5, 1), stopped=True
            )
            add_resident(conn, unregistered, followed=t(2026, 5, 1))

        store.write_sync(population)
        async with line_api(sim.api_url, config.access_token) as line:
            await worker.run_once(store, line, t(2027, 3, 1, 10))
            store.write_sync(
                lambda c: add_resident(c, late, followed=t(2027, 3, 20), registered=t(2027, 3, 20))
            )
            for moment in (
                t(2027, 3, 2, 3),
                t(2027, 3, 21, 3),
                t(2027, 3, 31, 23, 59),
                t(2027, 4, 1, 3),
            ):
                await worker.run_once(store, line, moment)
        pushes = sim.ledger.find(kind="push")
        assert sorted(p.user_id for p in pushes) == sorted([receiving, late])
        assert all(p.retry_key for p in pushes)
        assert all("改めてご登録" in p.texts[0] for p in pushes)

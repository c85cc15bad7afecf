"""The retention worker reads residents page by page (bounded memory on a large store): a
store with several times more residents than the page size still gets exactly the expiries
and notices an all-at-once evaluation gives, each exactly once."""

from __future__ import annotations

import asyncio

from kairand.keys import secrets
from kairand.line.client import line_api
from kairand.retention import rules as rules_mod
from kairand.retention import worker
from kairand.retention.receipts import subject_hmac
from kairand.retention.rules import Annual, MonthsAfterInteraction, RetentionRule, RetentionRules
from kairand.store import receipts, residents, settings
from kairand.store import retention as retention_store
from kairand.store.database import Connection, Store
from tests.support.retention_support import add_resident, push_stand_in, t

RULES = RetentionRules(
    rules=(
        RetentionRule(scope="registration", policy=Annual()),
        RetentionRule(scope="question", question="topics", policy=MonthsAfterInteraction(months=6)),
    )
)
PAGE = 3  # the store holds 23 residents: eight pages, the last one partial


def _population(conn: Connection) -> dict[str, str]:
    """23 residents (ids interleaved between kinds so every page mixes them); user id -> kind."""
    retention_store.save_rules(conn, RULES, "admin", t(2026, 4, 1))
    kinds: dict[str, str] = {}
    for i in range(23):
        uid = f"U{i:02d}"
        if i % 3 == 0:  # registered before the boundary: expires at it (and gets a notice)
            add_resident(conn, uid, followed=t(2026, 5, 1), registered=t(2026, 5, 2))
            kinds[uid] = "annual"
        elif i % 3 == 1:  # registered after the boundary: kept, topics answer goes stale
            add_resident(
                conn,
                uid,
                followed=t(2027, 4, 5),
                registered=t(2027, 4, 5),
                answers={"topics": ["bousai"]},
            )
            kinds[uid] = "topics"
        else:  # registered after the boundary, no answers the rules touch: untouched
            add_resident(conn, uid, followed=t(2027, 4, 6), registered=t(2027, 4, 6))
            kinds[uid] = "kept"
    return kinds


def _present(conn: Connection, uids: list[str]) -> list[str]:
    return [u for u in uids if residents.flags_of(conn, u) is not None]


async def test_paged_run_expires_every_due_resident_exactly_once(store: Store) -> None:
    """K2: with more residents than the page size, a catch-up run after downtime (last run
    before the 31 March boundary, back in mid-October) destroys every registration the missed
    boundary caught and every stale answer set — the same plan the pure rules give for all
    residents at once — with one receipt each; a second run and a later one destroy nothing."""
    kinds = store.write_sync(_population)
    uids = sorted(kinds)
    store.write_sync(settings.put, retention_store.LAST_RUN_KEY, t(2027, 3, 20, 3))
    now = t(2027, 10, 15, 3)
    everyone = store.read_sync(retention_store.resident_facts, ["topics"])
    assert len(everyone) == 23 > 2 * PAGE
    expected = rules_mod.plan_expiries(RULES, everyone, t(2027, 3, 20, 3), now)

    first = await worker.run_once(store, None, now, page_size=PAGE)
    annual = [u for u in uids if kinds[u] == "annual"]
    topics = [u for u in uids if kinds[u] == "topics"]
    assert first.expired == {
        "annual_expiry.registrations": len(annual),
        "retention.answer_sets": len(topics),
    }
    assert sum(first.expired.values()) == len(expected)
    assert store.read_sync(_present, uids) == [u for u in uids if kinds[u] != "annual"]
    remaining = store.read_sync(retention_store.resident_facts, ["topics"])
    assert len(remaining) == 23 - len(annual)
    assert not any(f.first_answer_at for f in remaining)  # every stale topics answer went

    second = await worker.run_once(store, None, t(2027, 10, 15, 4), page_size=PAGE)
    later = await worker.run_once(store, None, t(2027, 10, 16, 3), page_size=PAGE)
    assert not second.expired and not later.expired

    stored = store.read_sync(receipts.between, 0, t(2030, 1, 1))
    assert len(stored) == len(expected)
    hmac_key = await asyncio.to_thread(secrets.receipt_hmac_key)
    by_subject: dict[str, list[str]] = {}
    for receipt in stored:
        by_subject.setdefault(receipt.subject_hmac, []).append(receipt.reason)
    assert by_subject == {
        **{subject_hmac(hmac_key, u): ["annual_expiry"] for u in annual},
        **{subject_hmac(hmac_key, u): ["retention"] for u in topics},
    }


async def test_facts_pages_cover_every_resident_once(store: Store) -> None:
    """K2: the keyset pages of resident facts are disjoint, in id order, at most PAGE long,
    and together equal the facts of everyone read at once (answers included)."""
    store.write_sync(_population)
    everyone = store.read_sync(retention_store.resident_facts, ["topics"])
    pages = []
    after = None
    while page := store.read_sync(retention_store.resident_facts, ["topics"], after, PAGE):
        assert len(page) <= PAGE
        pages.append(page)
        after = page[-1].resident_id
    assert len(pages) == 8
    assert [f for page in pages for f in page] == everyone
    assert sum(1 for f in everyone if f.first_answer_at) == 8


async def test_paged_notices_once_per_resident_and_pending_retried_once(store: Store) -> None:
    """K2: paged notice planning sends one re-registration push to every due resident across
    all pages; a failed push stays pending and is retried exactly once in the next run (not
    once per page), with the same retry key."""
    kinds = store.write_sync(_population)
    # Only the 'annual' residents are registered before the March 2027 boundary: due.
    due = sorted(u for u, k in kinds.items() if k == "annual")
    assert len(due) > PAGE
    store.write_sync(settings.put, retention_store.LAST_RUN_KEY, t(2027, 2, 28, 3))
    async with push_stand_in() as line_stub, line_api(line_stub.url, "token") as line:
        line_stub.fail_next = [500]
        result = await worker.run_once(store, line, t(2027, 3, 1, 10), page_size=PAGE)
        assert result.notices == {"sent": len(due) - 1, "retry": 1}
        assert sorted({str(r["to"]) for r in line_stub.received}) == due
        result = await worker.run_once(store, line, t(2027, 3, 2, 3), page_size=PAGE)
        assert result.notices == {"sent": 1}
        result = await worker.run_once(store, line, t(2027, 3, 3, 3), page_size=PAGE)
        assert not result.notices
    assert len(line_stub.received) == len(due) + 1
    keys: dict[str, set[str]] = {}
    for request in line_stub.received:
        keys.setdefault(str(request["to"]), set()).add(str(request["retry_key"]))
    assert sorted(keys) == due and all(len(k) == 1 for k in keys.values())
    assert store.read_sync(retention_store.notice_counts) == {
        ("2027-03-31T23:59+09:00", "sent"): len(due)
    }


def test_page_query_walks_the_primary_key_not_the_question_index(store: Store) -> None:
    """K2: the per-page answers query is a range of the answers' primary key. If the planner
    chose the (question, ...) index instead, every page would scan all answers to the question
    and a run over 1M residents would be quadratic (this happened once; this plan check is the
    deterministic guard, no timing involved)."""
    from kairand.store.retention import FIRST_ANSWERS_SQL

    plan = store.read_sync(
        lambda conn: conn.execute(
            "EXPLAIN QUERY PLAN " + FIRST_ANSWERS_SQL.format(marks="?,?"),
            (1, 2000, "birth_year", "topics"),
        ).fetchall()
    )
    details = " ".join(str(row[-1]) for row in plan)
    assert "PRIMARY KEY" in details, details
    assert "answers_by_value" not in details and "answers_by_number" not in details, details

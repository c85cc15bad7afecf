"""The retention run writes its deletion receipts to the deletion journal a batch at a time
(one lock, one write, one fsync per write transaction instead of one per resident): every
receipt still reaches the journal, chained and signed as single appends are, before its
transaction commits; a batch that fails half-way leaves neither deletions nor journal lines,
and the next run completes it with each receipt written once."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from kairand.keys import secrets
from kairand.retention import worker
from kairand.retention.purge import purge_resident
from kairand.retention.rules import Annual, RetentionRule, RetentionRules
from kairand.store import deletion_journal as journal
from kairand.store import receipts, residents
from kairand.store import retention as retention_store
from kairand.store.database import Connection, Store
from tests.support.retention_support import add_resident, t

RULES = RetentionRules(
    rules=(
        RetentionRule(scope="registration", policy=Annual()),
        RetentionRule(scope="question", question="topics", policy=Annual()),
    )
)
RUN_AT = t(2027, 4, 1, 3)


def _population(conn: Connection) -> list[str]:
    """13 residents: 9 registered before the 2027 boundary (purged), 4 re-registered after it
    keeping a topics answer from before it (that answer expires). Returns the user ids."""
    retention_store.save_rules(conn, RULES, "admin", t(2026, 4, 1))
    uids = []
    for i in range(13):
        uid = f"U{i:032x}"
        if i % 3 == 2 and i < 12:
            add_resident(
                conn,
                uid,
                followed=t(2027, 4, 1, 0, 30),
                registered=t(2027, 4, 1, 0, 30),
                answers={"topics": ["bousai"]},
                answered=t(2026, 6, 1),
            )
        else:
            add_resident(conn, uid, followed=t(2026, 5, 1), registered=t(2026, 5, 2))
        uids.append(uid)
    return uids


def _journal_path(store: Store) -> Path:
    return journal.journal_beside(store.path)


def _count_fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = os.fsync

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)  # the journal's only; SQLite syncs in C
    return calls


async def test_every_receipt_reaches_the_journal_with_one_fsync_per_batch(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """S18, S11: after a run of 9 purges and 4 answer expiries in batches of 5 (after one
    single-receipt append from an unfollow), the journal verifies line by line (chain and
    signatures) and holds exactly the store's receipts, in order; the run flushed the journal
    once per batch, not once per receipt."""
    uids = store.write_sync(_population)
    hmac_key, signing_key = await asyncio.to_thread(
        lambda: (secrets.receipt_hmac_key(), secrets.signing_key())
    )
    store.write_sync(lambda c: add_resident(c, "Uleft", followed=t(2026, 4, 2)))
    assert await store.write(
        purge_resident, "Uleft", "unfollow", t(2026, 6, 1), hmac_key, signing_key
    )
    monkeypatch.setattr(worker, "BATCH", 5)
    fsyncs = _count_fsyncs(monkeypatch)

    result = await worker.run_once(store, None, RUN_AT, hmac_key=hmac_key, signing_key=signing_key)

    assert result.expired["annual_expiry.registrations"] == 9
    assert result.expired["annual_expiry.answer_sets"] == 4
    assert len(fsyncs) == 3  # 13 expiries in batches of 5
    entries = await asyncio.to_thread(
        journal.read_journal, _journal_path(store), signing_key.public_key()
    )
    stored = store.read_sync(lambda c: receipts.between(c, 0, 2**62))
    assert [e.receipt for e in entries] == stored
    assert [e.seq for e in entries] == list(range(1, 15))
    assert [e.kind for e in entries].count("registration") == 10
    assert [e.kind for e in entries].count("answers") == 4
    assert store.read_sync(lambda c: [u for u in uids if residents.flags_of(c, u)]) == [
        uids[i] for i in (2, 5, 8, 11)
    ]


async def test_a_batch_failing_half_way_leaves_no_deletion_and_no_journal_line(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """S18: the third purge of a batch fails: the batch's transaction rolls back whole and
    nothing of it reaches the journal (so a restore can re-apply nothing undecided); the next
    run purges every resident the rules caught with one receipt and one journal line each."""
    uids = store.write_sync(_population)
    hmac_key, signing_key = await asyncio.to_thread(
        lambda: (secrets.receipt_hmac_key(), secrets.signing_key())
    )
    real = purge_resident
    calls: list[str] = []

    def failing(conn: Connection, line_user_id: str, *args: object, **kwargs: object) -> object:
        calls.append(line_user_id)
        if len(calls) == 3:
            raise OSError("disk went away")
        return real(conn, line_user_id, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("kairand.retention.expiry.purge_resident", failing)
    with pytest.raises(OSError, match="disk went away"):
        await worker.run_once(store, None, RUN_AT, hmac_key=hmac_key, signing_key=signing_key)
    assert not _journal_path(store).exists()
    assert store.read_sync(lambda c: receipts.between(c, 0, 2**62)) == []
    assert store.read_sync(lambda c: sum(1 for u in uids if residents.flags_of(c, u))) == 13

    monkeypatch.setattr("kairand.retention.expiry.purge_resident", real)
    result = await worker.run_once(store, None, RUN_AT, hmac_key=hmac_key, signing_key=signing_key)
    assert result.expired["annual_expiry.registrations"] == 9
    entries = await asyncio.to_thread(
        journal.read_journal, _journal_path(store), signing_key.public_key()
    )
    assert [e.receipt for e in entries] == store.read_sync(lambda c: receipts.between(c, 0, 2**62))
    assert len({e.subject_hmac for e in entries if e.kind == "registration"}) == 9

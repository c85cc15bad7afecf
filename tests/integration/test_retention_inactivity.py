"""S20: with no retention rules saved, the default inactivity rule applies: a resident who
stopped using LINE without blocking the account is deleted after 24 months without any
interaction (reason `retention`, with a signed receipt); anyone who interacted is kept."""

from __future__ import annotations

import asyncio

import pytest

from kairand.keys import secrets
from kairand.retention import rules as rules_mod
from kairand.retention import worker
from kairand.retention.receipts import subject_hmac
from kairand.store import receipts, residents
from kairand.store import retention as retention_store
from kairand.store.database import Connection, Store
from tests.support.retention_support import add_resident, t


def _population(conn: Connection) -> None:
    add_resident(conn, "Usilent", followed=t(2024, 1, 10), registered=t(2024, 1, 10))
    add_resident(conn, "Uactive", followed=t(2024, 1, 10), registered=t(2024, 1, 10))
    residents.touch(conn, residents.load(conn, "Uactive")[0], t(2025, 6, 1))  # type: ignore[index]
    add_resident(conn, "Unew", followed=t(2025, 12, 1), registered=t(2025, 12, 1))


@pytest.mark.req("S20")
async def test_the_default_rule_deletes_residents_silent_for_24_months(store: Store) -> None:
    silent = subject_hmac(await asyncio.to_thread(secrets.receipt_hmac_key), "Usilent")
    await store.write(_population)
    assert await store.read(retention_store.current_rules) is None
    assert rules_mod.DEFAULT_RULES.rules[0].policy.months == 24  # type: ignore[union-attr]
    # One day before the 24 months are up: nobody goes.
    result = await worker.run_once(store, None, t(2026, 1, 9, 3))
    assert not result.expired
    result = await worker.run_once(store, None, t(2026, 1, 11, 3))
    assert sum(result.expired.values()) == 1
    present = await store.read(
        lambda conn: [u for u in ("Usilent", "Uactive", "Unew") if residents.flags_of(conn, u)]
    )
    assert present == ["Uactive", "Unew"]
    found = await store.read(receipts.for_subject, silent)
    assert [r.reason for r in found] == ["retention"]
    # Saved rules replace the default entirely.
    await store.write(
        retention_store.save_rules,
        rules_mod.RetentionRules(rules=()),
        "admin",
        t(2026, 1, 12),
    )
    result = await worker.run_once(store, None, t(2028, 1, 1, 3))
    assert not result.expired

"""W7 on the real reservation tables: three months after the booking date the daily retention
run overwrites the kana name's 1st and 3rd characters and the phone's last 2 digits in place
(seed 003), and no page of the database file or frame of its WAL — decrypted with the store
key — still holds the original afterwards."""

from __future__ import annotations

import asyncio

import pytest

from kairand.config import Config
from kairand.keys import secrets
from kairand.reservations import calendar, service
from kairand.reservations.model import Catalogue, example_service
from kairand.retention import worker
from kairand.retention.masking import RESERVATION_RULES, MaskRule
from kairand.retention.rules import RetentionRules, describe_ja, with_reservation_masking
from kairand.store import reservations as rstore
from kairand.store import residents
from kairand.store import retention as retention_store
from kairand.store.database import Connection, Store
from tests.support.retention_support import decrypted_pages, occurrences, t

SERVICE = example_service()
OLD = ("ヤマダ タロウ", "090-8765-4321", "2026-10-01T09:00")
NEW = ("スズキ ハナコ", "080-1111-2299", "2027-01-07T09:00")


def _book(conn: Connection) -> None:
    service.save_catalogue(conn, Catalogue(services=(SERVICE,)), "test", t(2026, 9, 1))
    for i, (kana, phone, slot) in enumerate((OLD, NEW)):
        rid = residents.start(conn, f"U{i:032x}", t(2026, 9, 1))
        rstore.keep_contact(conn, rid, kana, phone, t(2026, 9, 2) if i == 0 else t(2026, 12, 20))
        result = service.book(
            conn,
            service.load_catalogue(conn)[1],
            service_code=SERVICE.code,
            slot_key=slot,
            now=calendar.parse_key(slot).timestamp() - 5 * 86400,  # type: ignore[union-attr]
            resident_id=rid,
            channel="line",
            name_kana=kana,
            phone=phone,
        )
        assert isinstance(result, service.Booked)


def _scan(config: Config, key: bytes) -> bytes:
    return decrypted_pages(key, config.database_path)


@pytest.mark.req("W7")
async def test_bookings_and_contacts_are_masked_three_months_after(
    config: Config, store: Store
) -> None:
    await store.write(_book)
    rules = RetentionRules(masking=RESERVATION_RULES)
    await store.write(retention_store.save_rules, rules, "admin", t(2026, 9, 1))
    key = await asyncio.to_thread(secrets.db_key)
    await store.acheckpoint()
    before = await asyncio.to_thread(_scan, config, key)
    assert occurrences(before, [OLD[0], OLD[1]]) == [OLD[0], OLD[1]]  # the scanner can find them

    # 2026-12-01: three months have passed neither since 10/01 nor since 9/02 → nothing.
    result = await worker.run_once(store, None, t(2026, 12, 1, 3))
    assert not any(k.startswith("masked.") for k in result.expired)
    # 2027-01-02 03:00: the 10/01 booking (and the contact typed 9/02) are three months old.
    result = await worker.run_once(store, None, t(2027, 1, 2, 3))
    assert {k: v for k, v in result.expired.items() if k.startswith("masked.")} == {
        "masked.reservation_bookings.name_kana": 1,
        "masked.reservation_bookings.phone": 1,
        "masked.reservation_contacts.name_kana": 1,
        "masked.reservation_contacts.phone": 1,
    }
    rows = await store.read(
        lambda c: c.execute(
            "SELECT name_kana, phone FROM reservation_bookings ORDER BY id"
        ).fetchall()
    )
    assert rows == [("＊マ＊ タロウ", "090-8765-43**"), NEW[:2]]
    contacts = await store.read(
        lambda c: c.execute(
            "SELECT name_kana, phone FROM reservation_contacts ORDER BY resident_id"
        ).fetchall()
    )
    assert contacts == [("＊マ＊ タロウ", "090-8765-43**"), NEW[:2]]
    # The run checkpointed: no page or WAL frame holds the originals, the masked values and
    # the untouched newer booking are there (the scan is real).
    after = await asyncio.to_thread(_scan, config, key)
    assert occurrences(after, [OLD[0], OLD[1], "ヤマダ", "8765-4321"]) == []
    assert occurrences(after, ["＊マ＊ タロウ", "090-8765-43**", NEW[0], NEW[1]]) == [
        "＊マ＊ タロウ",
        "090-8765-43**",
        NEW[0],
        NEW[1],
    ]
    # Irreversible and idempotent: a later run changes nothing more.
    result = await worker.run_once(store, None, t(2027, 1, 3, 3))
    assert not any(k.startswith("masked.") for k in result.expired)


async def _masked(store: Store) -> list[tuple[str, str]]:
    return await store.read(
        lambda c: c.execute(
            "SELECT name_kana, phone FROM reservation_bookings ORDER BY id"
        ).fetchall()
    )


@pytest.mark.req("W7")
async def test_masking_is_on_by_default_without_any_saved_rules(store: Store) -> None:
    """No retention rules saved (the defaults): W7's masking still runs after 3 months."""
    await store.write(_book)
    result = await worker.run_once(store, None, t(2026, 12, 1, 3))
    assert not any(k.startswith("masked.") for k in result.expired)
    result = await worker.run_once(store, None, t(2027, 1, 2, 3))
    assert result.expired["masked.reservation_bookings.name_kana"] == 1
    assert await _masked(store) == [("＊マ＊ タロウ", "090-8765-43**"), NEW[:2]]


@pytest.mark.req("W7")
async def test_saved_rules_without_masking_keep_it_with_the_configured_period(
    store: Store,
) -> None:
    """Rules saved without any masking (an annual expiry only) do not switch W7 off; the
    period is the configured one (privacy.reservation_mask_after_months, 6 here)."""
    await store.write(_book)
    annual = RetentionRules.model_validate(
        {"rules": [{"scope": "question", "question": "area", "policy": {"kind": "annual"}}]}
    )
    await store.write(retention_store.save_rules, annual, "admin", t(2026, 9, 1))
    result = await worker.run_once(store, None, t(2027, 1, 2, 3), mask_after_months=6)
    assert not any(k.startswith("masked.") for k in result.expired)
    assert await _masked(store) == [OLD[:2], NEW[:2]]
    result = await worker.run_once(store, None, t(2027, 4, 2, 3), mask_after_months=6)
    assert result.expired["masked.reservation_bookings.phone"] == 1
    assert await _masked(store) == [("＊マ＊ タロウ", "090-8765-43**"), NEW[:2]]


@pytest.mark.req("W7")
async def test_a_saved_rule_for_a_column_replaces_the_default_for_it(store: Store) -> None:
    """A stricter rule of the municipality's own (a full overwrite of the phone) wins for that
    column; the other columns keep the default."""
    await store.write(_book)
    full = MaskRule(target="reservation_bookings.phone", keep=(), preserve="-", after_months=3)
    await store.write(
        retention_store.save_rules, RetentionRules(masking=(full,)), "admin", t(2026, 9, 1)
    )
    await worker.run_once(store, None, t(2027, 1, 2, 3))
    assert await _masked(store) == [("＊マ＊ タロウ", "***-****-****"), NEW[:2]]
    effective = with_reservation_masking(RetentionRules(masking=(full,)))
    assert [r.target for r in effective.masking].count("reservation_bookings.phone") == 1
    assert any("上書きする文字: 1、3文字目" in line for line in describe_ja(effective))

"""Masking (W7) and purge leave no trace in the database file or its WAL: every page and
every WAL frame is decrypted with the store key and scanned for the original bytes."""

from __future__ import annotations

import asyncio

import pytest

from kairand.config import Config
from kairand.keys import secrets
from kairand.retention import worker
from kairand.retention.masking import KANA_NAME, PHONE, MaskRule
from kairand.retention.rules import Annual, RetentionRule, RetentionRules
from kairand.store import masking, residents
from kairand.store import retention as retention_store
from kairand.store.database import Connection, Store
from tests.support.retention_support import add_resident, decrypted_pages, occurrences, t

NAME = "ヤマダタロウ"
PHONE_NUMBER = "090-8765-4321"
USER_ID = "U" + "5e1f" * 8


def _demo_table(conn: Connection) -> None:
    # Stand-in for the reservation module's table (W7): created by the test on the real store.
    conn.execute(
        "CREATE TABLE reservations (id INTEGER PRIMARY KEY, name_kana TEXT, phone TEXT,"
        " reserved_at INTEGER NOT NULL)"
    )
    conn.execute(
        "INSERT INTO reservations (name_kana, phone, reserved_at) VALUES (?, ?, ?)",
        (NAME, PHONE_NUMBER, t(2027, 1, 10)),
    )
    conn.execute(
        "INSERT INTO reservations (name_kana, phone, reserved_at) VALUES (?, ?, ?)",
        ("スズキハナコ", "080-1111-2299", t(2027, 4, 20)),
    )


def _register_targets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(masking, "TARGETS", dict(masking.TARGETS))
    for column in ("name_kana", "phone"):
        masking.register_target(
            f"reservations.{column}",
            masking.MaskTarget("reservations", "id", column, "reserved_at"),
        )


def _scan(config: Config, key: bytes) -> bytes:
    path = config.database_path
    shm = path.with_name(path.name + "-shm")
    # The -shm holds no page content, but scan its raw bytes too.
    return decrypted_pages(key, path) + (shm.read_bytes() if shm.exists() else b"")


def test_masking_overwrites_in_place_and_leaves_no_old_copy(
    config: Config, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """W7: the kana name keeps its 1st and 3rd characters and the phone its last 2 digits;
    after the checkpoint, no page or WAL frame of the file holds the originals (while before
    the checkpoint the scanner does find the stale page version: it can fail)."""
    key = secrets.db_key()
    store.write_sync(_demo_table)
    _register_targets(monkeypatch)
    store.checkpoint()
    assert occurrences(_scan(config, key), [NAME, PHONE_NUMBER]) == [NAME, PHONE_NUMBER]

    changed = store.write_sync(
        lambda c: (
            masking.mask_rows(c, "reservations.name_kana", KANA_NAME.apply, t(2027, 2, 1))
            + masking.mask_rows(c, "reservations.phone", PHONE.apply, t(2027, 2, 1))
        )
    )
    assert changed == 2
    rows = store.read_sync(
        lambda c: c.execute("SELECT name_kana, phone FROM reservations ORDER BY id").fetchall()
    )
    assert rows == [("ヤ＊ダ＊＊＊", "***-****-**21"), ("スズキハナコ", "080-1111-2299")]
    # Positive control: the old page version is still in the main file until the checkpoint.
    assert NAME in occurrences(_scan(config, key), [NAME])

    store.checkpoint()
    wal = config.database_path.with_name(config.database_path.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    scanned = _scan(config, key)
    assert occurrences(scanned, [NAME, PHONE_NUMBER, "8765-4321", "ヤマダ"]) == []
    assert occurrences(scanned, ["ヤ＊ダ＊＊＊", "スズキハナコ"]) == [
        "ヤ＊ダ＊＊＊",
        "スズキハナコ",
    ]

    # Second view: a plaintext copy made by SQLCipher itself (ATTACH ... KEY '' +
    # sqlcipher_export) holds the masked value and not the originals. It copies live rows only,
    # so it complements, not replaces, the page scan above.
    plain = config.daemon.state_dir.parent / "plain-copy.db"
    writer = store.raw_writer()
    writer.execute(f"ATTACH DATABASE '{plain}' AS plain KEY ''")
    writer.execute("SELECT sqlcipher_export('plain')")
    writer.execute("DETACH DATABASE plain")
    copy = plain.read_bytes()
    assert copy.startswith(b"SQLite format 3\x00")
    assert occurrences(copy, ["ヤ＊ダ＊＊＊", NAME, PHONE_NUMBER]) == ["ヤ＊ダ＊＊＊"]
    plain.unlink()
    # And the raw file and WAL bytes on disk show no plaintext at all (encryption at rest).
    raw = config.database_path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    assert occurrences(raw, ["ヤ＊ダ＊＊＊", "スズキハナコ", NAME]) == []


async def test_masking_rule_in_the_daily_run(config: Config, store: Store) -> None:
    """W7: masking rules are data in the retention rules; the daily run masks rows older than
    the rule's months (display names here), audits the count and checkpoints."""
    rules = RetentionRules(
        masking=(MaskRule(target="residents.display_name", keep=(0,), after_months=3),)
    )
    store.write_sync(retention_store.save_rules, rules, "admin", t(2027, 1, 1))
    store.write_sync(
        lambda c: add_resident(
            c, USER_ID, followed=t(2027, 1, 5), registered=t(2027, 1, 5), display_name="山田花子"
        )
    )
    store.write_sync(
        lambda c: add_resident(
            c, "Urecent", followed=t(2027, 4, 1), registered=t(2027, 4, 1), display_name="佐藤次郎"
        )
    )
    result = await worker.run_once(store, None, t(2027, 4, 10, 3))
    assert result.expired == {"masked.residents.display_name": 1}
    flags = store.read_sync(residents.flags_of, USER_ID)
    assert flags is not None and flags["display_name"] == "山***"
    key = await asyncio.to_thread(secrets.db_key)
    scanned = await asyncio.to_thread(_scan, config, key)
    assert occurrences(scanned, ["山田花子", "佐藤次郎"]) == ["佐藤次郎"]


async def test_purge_leaves_no_trace_in_file_or_wal(config: Config, store: Store) -> None:
    """S11, K2: after an annual expiry purges a resident, neither their LINE user id nor their
    display name is anywhere in the decrypted file or WAL (positive control first)."""
    rules = RetentionRules(rules=(RetentionRule(scope="registration", policy=Annual()),))
    store.write_sync(retention_store.save_rules, rules, "admin", t(2026, 4, 1))
    store.write_sync(
        lambda c: add_resident(
            c,
            USER_ID,
            followed=t(2026, 5, 1),
            registered=t(2026, 5, 1),
            display_name="山田花子",
            answers={"area": ["honmachi"], "topics": ["bousai"]},
        )
    )
    store.checkpoint()
    key = await asyncio.to_thread(secrets.db_key)
    before = await asyncio.to_thread(_scan, config, key)
    assert occurrences(before, [USER_ID, "山田花子"]) == [USER_ID, "山田花子"]
    result = await worker.run_once(store, None, t(2027, 4, 1, 3))
    assert result.expired == {"annual_expiry.registrations": 1}
    after = await asyncio.to_thread(_scan, config, key)
    assert occurrences(after, [USER_ID, "山田花子"]) == []

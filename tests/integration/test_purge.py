"""Unfollow = purge (S11) and profile minimisation (W6), checked down to the bytes of the
store: the SQLCipher pages are decrypted here with the store key and scanned."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from kairand.audit.chain import verify
from kairand.keys import secrets as keys
from kairand.retention.purge import purge_resident
from kairand.retention.receipts import subject_hmac, verify_receipt
from kairand.store import audit, inbox, metrics, receipts, residents, test_recipients
from kairand.store.bootstrap import open_store
from kairand.store.database import Connection
from tests.support.line_fakes import (
    InProcessDaemon,
    LineStandIn,
    event,
    setup_dev,
    user_id,
)
from tests.support.ports import free_port

PAGE = 4096
RESERVE = 80  # SQLCipher 4: 16-byte IV + 64-byte HMAC-SHA512 at the end of every page

# LINE's timestamps (realistic: postbacks older than a day are refused).
T0 = int(time.time() * 1000)


def _decrypt(page: bytes, key: bytes, first: bool) -> bytes:
    iv = page[PAGE - RESERVE : PAGE - RESERVE + 16]
    body = page[16 if first else 0 : PAGE - RESERVE]
    return Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor().update(body)


def plaintext_pages(db: Path, key: bytes) -> Iterator[bytes]:
    """Every page of the database file and of its WAL, decrypted (free and slack space too)."""
    data = db.read_bytes()
    for offset in range(0, len(data) - PAGE + 1, PAGE):
        yield _decrypt(data[offset : offset + PAGE], key, offset == 0)
    wal = db.with_name(db.name + "-wal")
    if wal.exists():
        frames = wal.read_bytes()[32:]
        for offset in range(0, len(frames) - (24 + PAGE) + 1, 24 + PAGE):
            page_no = int.from_bytes(frames[offset : offset + 4], "big")
            yield _decrypt(frames[offset + 24 : offset + 24 + PAGE], key, page_no == 1)


def found_in_store(db: Path, needle: str) -> bool:
    key = keys.db_key()
    return any(needle.encode() in page for page in plaintext_pages(db, key))


def _add_unsent_batch(conn: Connection, line_user_id: str) -> None:
    now = int(time.time())
    conn.execute(
        "INSERT INTO deliveries (id, title, confidentiality, messages, segment, status, author,"
        " created_at, updated_at) VALUES (1, 't', 1, '[]', '{}', 'sending', 'a', ?, ?)",
        (now, now),
    )
    conn.execute(
        "INSERT INTO batches (id, delivery_id, seq, retry_key, recipient_count)"
        " VALUES (1, 1, 1, 'k', 1)"
    )
    conn.execute(
        "INSERT INTO batch_recipients (batch_id, resident_id)"
        " SELECT 1, id FROM residents WHERE line_user_id = ?",
        (line_user_id,),
    )


async def _onboard(daemon: InProcessDaemon, line: LineStandIn, uid: str) -> None:
    follow = event("follow", uid, T0 + 1000)
    await daemon.post([follow])
    await asyncio.wait_for(line.wait_reply(follow["replyToken"]), 10)
    steps = [
        ("a=consent&v=1&o=yes", None),
        ("a=year&v=1&q=birth_year", {"date": "1970-04-01"}),
        ("a=ans&v=1&q=gender&o=male", None),
        ("a=ans&v=1&q=area&o=ekimae", None),
        ("a=tog&v=1&q=topics&o=bousai", None),
        ("a=done&v=1&q=topics", None),
    ]
    for i, (data, params) in enumerate(steps):
        ev = event("postback", uid, T0 + 2000 + i, data=data, params=params)
        await daemon.post([ev])
        await asyncio.wait_for(line.wait_reply(ev["replyToken"]), 10)


async def test_unfollow_leaves_no_trace_but_the_receipt(short_tmp: Path) -> None:
    """S11: blocking deletes the resident, answers, unsent batch entries, inbox events and test
    recipient entry at once; after a checkpoint the user id is in no page of the store or its
    WAL (decrypted and scanned); a signed receipt holds HMAC(receipt key, id), which
    recomputes from the id; the audit chain records the purge; a re-follow starts fresh."""
    port = free_port()
    line = LineStandIn()
    await line.start(port)
    _, config = await asyncio.to_thread(setup_dev, short_tmp / "dev", port)
    store = await asyncio.to_thread(open_store, config)
    uid = user_id()
    try:
        async with InProcessDaemon(config, store) as daemon:
            await _onboard(daemon, line, uid)
            code = await store.write(test_recipients.new_code, "tanaka", int(time.time()))
            claim = event("message", uid, T0 + 3000, text=code.lower())
            await daemon.post([claim])
            reply = await asyncio.wait_for(line.wait_reply(claim["replyToken"]), 10)
            assert "テスト送信先として登録しました" in reply[0]["text"]
            await store.write(_add_unsent_batch, uid)
            flags = await store.read(residents.flags_of, uid)
            assert flags is not None and flags["registered"]
            await store.acheckpoint()
            assert await asyncio.to_thread(
                found_in_store, store.path, uid
            )  # the scan does see ids that are there

            await daemon.post([event("unfollow", uid, T0 + 4000)])
            await daemon.settle()

            assert await store.read(residents.flags_of, uid) is None
            assert await store.read(test_recipients.recipients_of, "tanaka") == []
            found = await store.read(
                receipts.for_subject,
                subject_hmac(await asyncio.to_thread(keys.receipt_hmac_key), uid),
            )
            assert len(found) == 1 and found[0].reason == "unfollow"
            assert found[0].deleted["answers"] == 4 and found[0].deleted["test_recipient"] == 1
            assert found[0].deleted["unsent_batch_entries"] == 1
            assert verify_receipt(
                found[0], (await asyncio.to_thread(keys.signing_key)).public_key()
            )
            entries = await store.read(lambda c: list(audit.iter_entries(c)))
            assert [e.entry.action for e in entries] == ["resident.purge"]
            assert uid not in repr(entries)
            assert (await store.read(lambda c: verify(audit.iter_entries(c)))).ok
            today = metrics.day_of(time.time())
            assert await store.read(metrics.series, "unfollow", today, today) == {today: 1}
            assert set(await store.read(inbox.counts)) == {"done"}
            await store.acheckpoint()
            assert not await asyncio.to_thread(found_in_store, store.path, uid)
            assert store.path.with_name("kairan.db-wal").stat().st_size == 0

            # Re-follow (unblock) starts fresh.
            again = event("follow", uid, T0 + 5000)
            await daemon.post([again])
            messages = await asyncio.wait_for(line.wait_reply(again["replyToken"]), 10)
            assert "友だち追加ありがとうございます" in messages[0]["text"]
            assert await store.read(residents.answers_of, uid) == {}
    finally:
        await asyncio.to_thread(store.close)
        await line.stop()


async def test_unfollow_and_refollow_in_one_body_keep_the_refollow(short_tmp: Path) -> None:
    """S11: the purge removes the resident's pending events up to the unfollow, but keeps a
    re-follow that came after it (even when both arrive in one webhook body)."""
    port = free_port()
    line = LineStandIn()
    await line.start(port)
    _, config = await asyncio.to_thread(setup_dev, short_tmp / "dev", port)
    store = await asyncio.to_thread(open_store, config)
    uid = user_id()
    try:
        async with InProcessDaemon(config, store) as daemon:
            await _onboard(daemon, line, uid)
            refollow = event("follow", uid, T0 + 9000)
            await daemon.post([refollow, event("unfollow", uid, T0 + 8000)])
            await daemon.settle()
            flags = await store.read(residents.flags_of, uid)
            assert flags is not None and not flags["registered"]
            assert await store.read(residents.answers_of, uid) == {}
            await asyncio.wait_for(line.wait_reply(refollow["replyToken"]), 10)
    finally:
        await asyncio.to_thread(store.close)
        await line.stop()


def test_purge_resident_contract(short_tmp: Path) -> None:
    """S11: purge_resident(conn, id, reason, now, hmac_key, signing_key) → receipt id, or None
    when nothing about the id is stored (no receipt then)."""
    _, config = setup_dev(short_tmp / "dev", free_port())
    store = open_store(config)
    try:
        uid = user_id()
        now = int(time.time())
        store.write_sync(residents.start, uid, now)
        hmac_key, signing_key = keys.receipt_hmac_key(), keys.signing_key()
        receipt_id = store.write_sync(
            purge_resident, uid, "annual_expiry", now, hmac_key, signing_key
        )
        assert isinstance(receipt_id, int)
        again = store.write_sync(purge_resident, uid, "annual_expiry", now, hmac_key, signing_key)
        assert again is None
        assert len(store.read_sync(receipts.between, 0, now + 1)) == 1
    finally:
        store.close()


async def test_display_name_only_when_configured_never_picture_or_status(short_tmp: Path) -> None:
    """W6: with privacy.store_display_name the display name is kept; pictureUrl and
    statusMessage never reach any page of the store."""
    port = free_port()
    line = LineStandIn()
    await line.start(port)
    extra = "\n[privacy]\nstore_display_name = true\n"
    _, config = await asyncio.to_thread(setup_dev, short_tmp / "dev", port, extra=extra)
    store = await asyncio.to_thread(open_store, config)
    uid = user_id()
    try:
        async with InProcessDaemon(config, store) as daemon:
            follow = event("follow", uid, 1)
            await daemon.post([follow])
            await asyncio.wait_for(line.wait_reply(follow["replyToken"]), 10)
            for _ in range(100):
                flags = await store.read(residents.flags_of, uid)
                if flags and flags["display_name"]:
                    break
                await asyncio.sleep(0.05)
            assert flags is not None and flags["display_name"] == "山田 花子"
            assert line.profile_calls == 1
            await store.acheckpoint()
            assert await asyncio.to_thread(found_in_store, store.path, "山田 花子")
            assert not await asyncio.to_thread(found_in_store, store.path, "profile.example")
            assert not await asyncio.to_thread(found_in_store, store.path, "ステータス")
    finally:
        await asyncio.to_thread(store.close)
        await line.stop()

"""Images are purged from the store after their serving period, with an injected
clock: not while a delivery, a series, a template or a test send may still need them; then
deleted (bytes and links) and audited; the serving route then has nothing to serve."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import time

import pytest
from PIL import Image

from kairand.config import MediaSection
from kairand.delivery import series, service, templates
from kairand.delivery.media import purge_expired, purge_loop, upload
from kairand.delivery.messages import CardItem, ImageItem
from kairand.delivery.model import DeliveryContent, Status
from kairand.delivery.recurrence import RecurrenceRule
from kairand.delivery.sender import Sender
from kairand.store import audit as audit_store
from kairand.store import media as media_store
from kairand.store.database import Store
from kairand.timeutil import JST
from tests.support.delivery_harness import IN_SEGMENT, fast_config, populate, run_sender, simulator

PERIOD = 3600
MEDIA = MediaSection(public_base_url="https://relay.city.example.jp", serve_seconds=PERIOD)


def picture(shade: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (320, 240), (shade, 120, 90)).save(out, "JPEG")
    return out.getvalue()


async def stored(store: Store, shade: int) -> str:
    return (await upload(store, "tanaka", picture(shade), f"p{shade}.jpg", 10**7)).id


def exists(store: Store, media_id: str) -> bool:
    return store.read_sync(media_store.info, media_id) is not None


def content(media_id: str, title: str = "写真のお知らせ") -> DeliveryContent:
    return DeliveryContent(
        title=title, messages=(ImageItem(media=media_id, file_name="p.jpg"),), segment=IN_SEGMENT
    )


@pytest.mark.req("G3")
async def test_images_are_purged_after_their_serving_period(store: Store) -> None:
    """G3: an image sent in a delivery stays until serve_seconds after the delivery finished,
    then its bytes and links are deleted and a media.purge entry is audited; images still
    needed (a scheduled delivery, an active series, a template, a live test grant, a fresh
    upload) are kept; a purge run is idempotent."""
    populate(store, 12)
    started = time.time()  # before every upload and every delivery's end
    sent_img, scheduled_img, series_img, template_img, granted_img, fresh_img, unused_img = [
        await stored(store, shade) for shade in (10, 40, 70, 100, 130, 160, 190)
    ]
    # A delivery that is sent now.
    did = await service.create_draft(store, "tanaka", content(sent_img))
    await service.submit(store, did, "tanaka")
    await service.approve(store, did, "suzuki")
    async with simulator(12) as line:
        await run_sender(
            Sender(store, line.api, fast_config(), media=MEDIA), store=store, delivery_ids=(did,)
        )
    finished = (await service.get(store, did)).finished_at
    assert finished is not None and (await service.get(store, did)).status == Status.sent
    # A delivery scheduled in two weeks (approved, not sent yet).
    later = dt.datetime.now(JST) + dt.timedelta(days=14)
    sid_content = content(scheduled_img, "予約配信").model_copy(update={"scheduled_at": later})
    scheduled = await service.create_draft(store, "tanaka", sid_content)
    await service.submit(store, scheduled, "tanaka")
    await service.approve(store, scheduled, "suzuki")
    # An active series whose card shows an image; a template with an image.
    card = CardItem(title="ごみの日", body="", image=series_img)
    rule = RecurrenceRule(frequency="weekly", weekdays=(0,), time=dt.time(8), start=dt.date.today())
    sid = await series.create(
        store,
        "tanaka",
        DeliveryContent(title="ごみの日", messages=(card,), segment=IN_SEGMENT),
        rule,
    )
    await series.submit(store, sid, "tanaka")
    await series.approve(store, sid, "suzuki")
    await templates.create(
        store,
        "tanaka",
        "ポスター",
        {"title": "ポスター", "messages": [{"kind": "image", "media": template_img}]},
    )
    now = time.time()
    store.write_sync(media_store.grant, [granted_img], int(now) + 30 * 86400)

    # Within the period: nothing goes (the unused upload is young too).
    assert await purge_expired(store, started + PERIOD - 2, PERIOD) == 0
    assert all(exists(store, m) for m in (sent_img, unused_img))

    # Past it: the sent delivery's image and the unused upload go; the rest stays.
    at = max(finished.timestamp(), now) + PERIOD + 1
    store.write_sync(
        lambda c: c.execute(
            "UPDATE media SET uploaded_at = uploaded_at + ? WHERE id = ?", (2 * PERIOD, fresh_img)
        )
    )
    assert await purge_expired(store, at, PERIOD) == 2
    assert not exists(store, sent_img) and not exists(store, unused_img)
    for kept in (scheduled_img, series_img, template_img, granted_img, fresh_img):
        assert exists(store, kept), kept
    assert await purge_expired(store, at, PERIOD) == 0  # idempotent
    token_gone = store.read_sync(
        lambda c: c.execute("SELECT count(*) FROM delivery_media WHERE media_id = ?", (sent_img,))
    ).fetchone()[0]
    assert token_gone == 0
    # The delivery's history is intact (its record names the image; the bytes are gone).
    assert (await service.get(store, did)).status == Status.sent
    entries = store.read_sync(lambda c: list(audit_store.iter_entries(c)))
    purges = [e.entry for e in entries if e.entry.action == "media.purge"]
    assert sorted(e.target for e in purges) == sorted(
        f"media {m[:16]}" for m in (sent_img, unused_img)
    )
    assert all(e.actor == "system" and e.detail["bytes"] > 0 for e in purges)

    # The series ends: its image goes once the period has passed.
    await series.change(store, sid, "tanaka", "end")
    assert await purge_expired(store, at, PERIOD) == 1
    assert not exists(store, series_img)


async def test_purge_worker_runs_with_an_injected_clock(store: Store) -> None:
    """The daemon's media-purge worker purges at once and then every purge_interval_seconds,
    on its clock; it stops when asked."""
    old = await stored(store, 220)
    stop = asyncio.Event()
    section = MEDIA.model_copy(update={"purge_interval_seconds": 1})
    task = asyncio.create_task(
        purge_loop(store, section, stop, clock=lambda: time.time() + 2 * PERIOD)
    )
    deadline = time.monotonic() + 20
    while exists(store, old) and time.monotonic() < deadline:  # noqa: ASYNC110 (the store)
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 10)
    assert not exists(store, old)

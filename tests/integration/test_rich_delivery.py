"""Rich deliveries end to end: a card with an image and a link button, a photo and a
sticker go to a segment; LINE (the simulator) fetches the images the way it would at LINE —
through the relay path, i.e. TLS on the webhook's unix socket — only while they may be served.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from kairand.config import Config, LinksSection, MediaSection, WebhookSection
from kairand.delivery import service
from kairand.delivery.errors import InvalidContent
from kairand.delivery.media import upload
from kairand.delivery.messages import CardItem, ImageItem, LinkButton, StickerItem
from kairand.delivery.model import DeliveryContent, Status
from kairand.delivery.sender import Sender
from kairand.line.client import line_api
from kairand.line.media import add_media_routes
from kairand.line.webhook import make_webhook_app, start_sites
from kairand.simulator import Simulator, SimulatorConfig, WebhookTarget
from kairand.simulator.limits import message_details
from kairand.simulator.media import BlindRelay, relay_session
from kairand.simulator.spec import messaging_spec
from kairand.store import audit as audit_store
from kairand.store.database import Store
from kairand.tls import self_signed
from tests.support.delivery_harness import IN_SEGMENT, fast_config, populate, run_sender, uid

RELAY = "relay.city.example.jp"
ALLOWED = ("city.example.jp",)


def photo() -> bytes:
    image = Image.new("RGB", (800, 600), (30, 160, 90))
    exif = Image.Exif()
    exif[0x8825] = {1: "N", 2: (35.0, 41.0, 22.5), 3: "E", 4: (139.0, 41.0, 30.1)}
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif.tobytes())
    return out.getvalue()


@dataclass
class Relay:
    config: Config
    socket: Path
    ca_file: Path
    now: list[float]

    async def get(self, url: str) -> int:
        """Fetch URL like LINE: TLS through a blind relay into the unix socket."""
        context = await asyncio.to_thread(ssl.create_default_context, cafile=str(self.ca_file))
        relay = BlindRelay(str(self.socket))
        await relay.start()
        try:
            async with relay_session(relay) as session, session.get(url, ssl=context) as resp:
                await resp.read()
                return resp.status
        finally:
            await relay.close()


@contextlib.asynccontextmanager
async def relay_site(config: Config, store: Store, tmp: Path) -> AsyncIterator[Relay]:
    """The webhook site as the appliance runs it (TLS on a unix socket), with the images."""
    cert, key = self_signed(RELAY)
    cert_file, key_file = tmp / "relay.crt", tmp / "relay.key"
    await asyncio.to_thread(cert_file.write_bytes, cert)
    await asyncio.to_thread(key_file.write_bytes, key)
    sock = tmp / "wh.sock"
    config = config.model_copy(
        update={
            "webhook": WebhookSection(socket=sock, tls_cert=cert_file, tls_key=key_file),
            "media": MediaSection(public_base_url=f"https://{RELAY}", serve_seconds=3600),
            "links": LinksSection(allowed_domains=ALLOWED),
        }
    )
    now = [time.time()]
    app = make_webhook_app(config, store, "0" * 32)
    add_media_routes(app, config, store, clock=lambda: now[0])
    runner, _ = await start_sites(config, app)
    try:
        yield Relay(config, sock, cert_file, now)
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def line_through(relay: Relay, followers: int) -> AsyncIterator[tuple[Simulator, object]]:
    sim = Simulator(
        SimulatorConfig(
            population=0,
            auto_react=False,
            image_target=WebhookTarget(
                f"https://{RELAY}/webhook",
                unix_socket=str(relay.socket),
                ca_file=str(relay.ca_file),
            ),
        )
    )
    async with sim:
        for i in range(followers):
            sim.platform.add_follower({"userId": uid(i), "displayName": "住民"})
        async with line_api(sim.api_url, sim.config.access_token, 5.0) as api:
            yield sim, api


def rich_content(media_id: str) -> DeliveryContent:
    return DeliveryContent(
        title="健診のお知らせ",
        messages=(
            "今年の健康診断のお知らせです。",
            CardItem(
                title="健康診断 6月10日（水）",
                body="市民センターで行います。予約はこちらから。",
                image=media_id,
                buttons=(
                    LinkButton(label="詳しくはこちら", url="https://www.city.example.jp/kenshin"),
                ),
            ),
            ImageItem(media=media_id, file_name="poster.jpg"),
            StickerItem(package_id="11537", sticker_id="52002734"),
        ),
        segment=IN_SEGMENT,
    )


async def approved_rich(store: Store, relay: Relay, media_id: str) -> int:
    did = await service.create_draft(store, "tanaka", rich_content(media_id), link_domains=ALLOWED)
    await service.submit(store, did, "tanaka", link_domains=ALLOWED)
    await service.approve(store, did, "suzuki", link_domains=ALLOWED)
    return did


@pytest.mark.req("N4")
@pytest.mark.req("G3")
@pytest.mark.req("S10")
async def test_card_with_image_link_and_sticker_reaches_the_segment(
    config: Config, store: Store, short_tmp: Path
) -> None:
    """N4, G3, S10: a card with a hero image and a link button, a photo and a sticker are
    multicast to the segment only; every request LINE received passes the OpenAPI spec; LINE
    fetched each image through the relay path (TLS on the unix socket) and got the stripped
    JPEG; the ledger records the message kinds; images are 404 before approval and after the
    serving period."""
    expected = populate(store, 60)
    async with relay_site(config, store, short_tmp) as relay:
        info = await upload(store, "tanaka", photo(), "poster.jpg", 20 * 1024 * 1024)
        did = await service.create_draft(
            store, "tanaka", rich_content(info.id), link_domains=ALLOWED
        )
        token = store.read_sync(
            lambda c: c.execute("SELECT token FROM media WHERE id = ?", (info.id,)).fetchone()[0]
        )
        url = f"https://{RELAY}/media/{token}/{info.id}/original.jpg"
        assert await relay.get(url) == 404  # a draft's image is not served
        await service.submit(store, did, "tanaka", link_domains=ALLOWED)
        await service.approve(store, did, "suzuki", link_domains=ALLOWED)
        assert await relay.get(url) == 200
        assert await relay.get(url.replace(token, "x" * len(token))) == 404  # unguessable path
        async with line_through(relay, 60) as (sim, api):
            sender = Sender(store, api, fast_config(), media=relay.config.media)  # type: ignore[arg-type]
            await run_sender(sender, store=store, delivery_ids=(did,))
            view = await service.get(store, did)
            assert view.status == Status.sent and view.sent_count == len(expected)
            receipts = sim.ledger.find(kind="multicast")
            assert set(sim.ledger.recipients(kind="multicast")) == expected
            assert all(r.message_types == ("text", "flex", "image", "sticker") for r in receipts)
            assert sim.ledger.kinds()["flex"] == len(expected)
            for body in {r.body for r in receipts}:
                parsed = json.loads(body)
                assert messaging_spec().validate("MulticastRequest", parsed) == []
                assert message_details(parsed["messages"]) == []
                card = parsed["messages"][1]["contents"]
                assert card["footer"]["contents"][0]["action"]["uri"] == (
                    "https://www.city.example.jp/kenshin"
                )
            fetched = sim.platform.image_fetcher.fetched  # type: ignore[union-attr]
            assert fetched and all(status == 200 for _, status in fetched)
            assert {u.rsplit("/", 1)[1] for u, _ in fetched} == {"original.jpg", "preview.jpg"}
        # Served for the configured period after the delivery finished, then 404.
        finished = (await service.get(store, did)).finished_at
        assert finished is not None
        relay.now[0] = finished.timestamp() + 3599
        assert await relay.get(url) == 200
        relay.now[0] = finished.timestamp() + 3601
        assert await relay.get(url) == 404
        assert await relay.get(url.replace("original.jpg", "preview.jpg")) == 404
    entries = store.read_sync(lambda c: list(audit_store.iter_entries(c)))
    uploads = [e.entry for e in entries if e.entry.action == "media.upload"]
    assert uploads and uploads[0].detail["metadata_stripped"] is True


@pytest.mark.req("N4")
async def test_delivery_fails_when_line_cannot_fetch_its_image(
    config: Config, store: Store, short_tmp: Path
) -> None:
    """N4: if LINE cannot fetch an image (here: the sender builds URLs under a path the
    appliance does not serve, as after a misconfiguration), the request is refused and the
    delivery ends failed with LINE's reason; nobody received a broken message."""
    populate(store, 30)
    async with relay_site(config, store, short_tmp) as relay:
        info = await upload(store, "tanaka", photo(), "poster.jpg", 20 * 1024 * 1024)
        did = await approved_rich(store, relay, info.id)
        wrong = relay.config.media.model_copy(update={"path": "/not-served"})
        async with line_through(relay, 30) as (sim, api):
            sender = Sender(store, api, fast_config(), media=wrong)  # type: ignore[arg-type]
            await run_sender(sender, store=store, delivery_ids=(did,))
            view = await service.get(store, did)
            assert view.status == Status.failed
            assert "Failed to fetch the image (HTTP 404)" in (view.status_reason or "")
            assert sim.ledger.find(kind="multicast") == []


async def test_images_need_a_public_address_before_approval(store: Store) -> None:
    """Without media.public_base_url LINE could not fetch the image: approval is refused with
    a clear message, and the sender refuses such a delivery rather than send a broken one."""
    populate(store, 3)  # a delivery to nobody is refused before the image rule is reached
    info = await upload(store, "tanaka", photo(), "a.jpg", 20 * 1024 * 1024)
    did = await service.create_draft(store, "tanaka", rich_content(info.id), link_domains=ALLOWED)
    await service.submit(store, did, "tanaka", link_domains=ALLOWED)
    with pytest.raises(InvalidContent, match="公開アドレス"):
        await service.approve(store, did, "suzuki", link_domains=ALLOWED, media_public=False)
    assert (await service.get(store, did)).status == Status.pending_approval


@pytest.mark.req("G3")
async def test_links_outside_the_allowlist_are_refused_and_rechecked(store: Store) -> None:
    """G3: a link to a domain not allowed is refused at create; an admin-added domain
    (settings) is allowed; removing it again makes the approval fail (checked again)."""
    from kairand.store import settings

    populate(store, 3)  # a delivery to nobody is refused before the link rule is reached
    content = DeliveryContent(
        title="t",
        messages=(
            CardItem(
                title="x", buttons=(LinkButton(label="申込", url="https://forms.example.com/a"),)
            ),
        ),
        segment=IN_SEGMENT,
    )
    with pytest.raises(InvalidContent) as refused:
        await service.create_draft(store, "tanaka", content, link_domains=ALLOWED)
    assert refused.value.field == "messages[0].buttons[0].url"
    assert "forms.example.com" in refused.value.message_ja
    store.write_sync(settings.put, service.LINK_DOMAINS_KEY, ["forms.example.com"])
    did = await service.create_draft(store, "tanaka", content, link_domains=ALLOWED)
    await service.submit(store, did, "tanaka", link_domains=ALLOWED)
    store.write_sync(settings.put, service.LINK_DOMAINS_KEY, [])
    with pytest.raises(InvalidContent):
        await service.approve(store, did, "suzuki", link_domains=ALLOWED)


@pytest.mark.req("G3")
async def test_test_send_serves_the_draft_images_for_a_limited_time(
    config: Config, store: Store, short_tmp: Path
) -> None:
    """G3: a test send (push to the staff member's own phone, before approval) lets LINE fetch
    the draft's images through the relay for media.test_serve_seconds only; the phone gets
    the 【テスト送信】 notice, then the card and the picture; before the test send and after the
    grant the image is 404."""
    from kairand.store import test_recipients

    phone = "U" + "c" * 32
    now = int(time.time())
    code = store.write_sync(test_recipients.new_code, "tanaka", now)
    store.write_sync(test_recipients.claim, code, phone, now)
    async with relay_site(config, store, short_tmp) as relay:
        info = await upload(store, "tanaka", photo(), "poster.jpg", 20 * 1024 * 1024)
        did = await service.create_draft(
            store, "tanaka", rich_content(info.id), link_domains=ALLOWED
        )
        token = store.read_sync(
            lambda c: c.execute("SELECT token FROM media WHERE id = ?", (info.id,)).fetchone()[0]
        )
        url = f"https://{RELAY}/media/{token}/{info.id}/preview.jpg"
        assert await relay.get(url) == 404
        async with line_through(relay, 0) as (sim, api):
            sim.platform.add_follower({"userId": phone, "displayName": "職員"})
            sent = await service.test_send(
                store,
                api,  # type: ignore[arg-type]
                did,
                "tanaka",
                media=relay.config.media,
            )
            assert sent == 1
            receipt = sim.ledger.find(kind="push")[0]
            # The 【テスト送信】 notice is a message of its own; the rest goes out unchanged.
            assert receipt.message_types == ("text", "text", "flex", "image", "sticker")
            assert receipt.texts[0].startswith("【テスト送信】")
            card = json.loads(receipt.body)["messages"][2]["contents"]
            assert card["body"]["contents"][0]["text"] == "健康診断 6月10日（水）"
            assert all(status == 200 for _, status in sim.platform.image_fetcher.fetched)  # type: ignore[union-attr]
        assert await relay.get(url) == 200
        relay.now[0] = time.time() + relay.config.media.test_serve_seconds + 5
        assert await relay.get(url) == 404
    assert (await service.get(store, did)).status == Status.draft

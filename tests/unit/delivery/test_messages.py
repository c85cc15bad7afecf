"""Message kinds: every message Kairan sends validates against LINE's OpenAPI spec
and LINE's extra limits; the model refuses what LINE would refuse; links only go to allowed
domains; images are stripped of metadata and fit LINE's limits."""

from __future__ import annotations

import io
import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from linebot.v3.messaging import Message, MulticastRequest
from PIL import Image, PngImagePlugin
from pydantic import ValidationError

from kairand.delivery.images import MAX_PREVIEW_BYTES, ImageRefused, prepare
from kairand.delivery.messages import (
    CardItem,
    ImageItem,
    LinkButton,
    StickerItem,
    default_stickers,
    domain_allowed,
    to_line_all,
    url_problems,
    urls_of,
)
from kairand.delivery.model import DeliveryContent
from kairand.segments.model import SegmentFilter
from kairand.simulator import limits
from kairand.simulator.spec import messaging_spec

MEDIA = "ab" * 32
SEGMENT = SegmentFilter(all_registered=True)


def media_url(media_id: str, variant: str) -> str:
    return f"https://relay.city.example.jp/media/tok3nTOKENtoken12/{media_id}/{variant}.jpg"


def wire(items) -> dict:
    """The multicast body exactly as line-bot-sdk serialises it for LINE."""
    messages = [Message.from_dict(d) for d in to_line_all(items, media_url)]
    request = MulticastRequest(to=["U" + "0" * 32], messages=messages)
    return json.loads(request.to_json())


def assert_line_accepts(body: dict) -> None:
    assert messaging_spec().validate("MulticastRequest", body) == []
    assert limits.message_details(body["messages"]) == []


CARD = CardItem(
    title="健康診断のお知らせ",
    body="6月10日（水）に市民センターで健康診断を行います。",
    image=MEDIA,
    buttons=(
        LinkButton(label="詳しくはこちら", url="https://www.city.example.jp/kenshin"),
        LinkButton(label="予約する", url="https://yoyaku.city.example.jp/?q=1&r=2"),
        LinkButton(label="地図", url="https://www.city.example.jp/map#center"),
    ),
)


@pytest.mark.req("N4")
def test_every_kind_in_one_delivery_validates_against_line_spec() -> None:
    """N4: text, image, sticker and a full card (hero image, title, body, 3 link buttons) in
    one request: the SDK's JSON passes LINE's OpenAPI spec and LINE's limits."""
    items = (
        "お知らせです。",
        ImageItem(media=MEDIA),
        StickerItem(package_id="446", sticker_id="1988"),
        CARD,
        CardItem(title="画像もボタンもないカード"),
    )
    body = wire(items)
    assert [m["type"] for m in body["messages"]] == ["text", "image", "sticker", "flex", "flex"]
    assert_line_accepts(body)
    flex = body["messages"][3]
    assert flex["altText"] == CARD.title
    assert flex["contents"]["hero"]["url"].endswith(f"/{MEDIA}/preview.jpg")
    buttons = flex["contents"]["footer"]["contents"]
    assert [b["action"]["uri"] for b in buttons] == [b.url for b in CARD.buttons]
    assert body["messages"][1]["originalContentUrl"].startswith("https://")
    assert "hero" not in body["messages"][4]["contents"]


@pytest.mark.req("N4")
def test_every_default_sticker_validates() -> None:
    """N4: each of LINE's default stickers offered in the TUI is a valid sticker message."""
    stickers = default_stickers()
    assert len(stickers) > 300
    for package, sticker, _ in random.Random(1).sample(stickers, 40):
        assert_line_accepts(wire((StickerItem(package_id=package, sticker_id=sticker),)))
    with pytest.raises(ValidationError):
        StickerItem(package_id="446", sticker_id="1")  # not in the package's range
    with pytest.raises(ValidationError):
        StickerItem(package_id="99999", sticker_id="1988")


label = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=20
).filter(str.strip)
# A card body may hold newlines and tabs but no other control character (S7).
text = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]) | st.sampled_from("\n\r\t"),
    max_size=300,
)
path = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_/", max_size=40)


@st.composite
def cards(draw) -> CardItem:
    return CardItem(
        title=draw(label),
        body=draw(text),
        image=draw(st.none() | st.just(MEDIA)),
        buttons=tuple(
            LinkButton(label=draw(label), url="https://www.city.example.jp/" + draw(path))
            for _ in range(draw(st.integers(0, 3)))
        ),
        alt_text=draw(
            st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=50)
        ),
    )


@pytest.mark.req("N4")
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(cards(), min_size=1, max_size=5))
def test_any_card_the_model_accepts_line_accepts(items: list[CardItem]) -> None:
    """N4: whatever card content staff may enter (any text, 0–3 buttons, with or without an
    image), the mapped message validates against LINE's spec and limits."""
    assert_line_accepts(wire(items))


@pytest.mark.req("N4")
@pytest.mark.parametrize(
    "bad",
    [
        {"title": "t", "buttons": [{"label": "x", "url": "https://a.jp"}] * 4},
        {"title": "t", "buttons": [{"label": "あ" * 21, "url": "https://a.jp"}]},
        {"title": "t", "buttons": [{"label": "x", "url": "http://a.jp"}]},
        {"title": "t", "buttons": [{"label": "x", "url": "javascript:alert(1)"}]},
        {"title": "t", "buttons": [{"label": "x", "url": "https://user:pw@a.jp/"}]},
        {"title": "   "},
        {"title": "t", "image": "not-a-media-id"},
    ],
)
def test_card_model_refuses_what_line_or_policy_refuses(bad: dict) -> None:
    """N4: more than 3 buttons, labels over 20, links not https, blank titles and unknown images
    are refused before anything is stored."""
    with pytest.raises(ValidationError):
        CardItem.model_validate(bad)


def test_delivery_content_takes_any_mix_of_1_to_5() -> None:
    """Old text-only content stays valid; rich items mix freely; 6 messages are refused."""
    content = DeliveryContent.model_validate(
        {
            "title": "t",
            "messages": [
                "本文",
                {"kind": "sticker", "package_id": "446", "sticker_id": "1990"},
                {"kind": "image", "media": MEDIA},
            ],
            "segment": {"all_registered": True},
        }
    )
    assert isinstance(content.messages[1], StickerItem) and content.messages[0] == "本文"
    with pytest.raises(ValidationError):
        DeliveryContent(title="t", messages=("a",) * 6, segment=SEGMENT)
    with pytest.raises(ValidationError):
        DeliveryContent.model_validate(
            {"title": "t", "messages": [{"kind": "video"}], "segment": {"all_registered": True}}
        )


# -- links ---------------------------------------------------------------------------------


@pytest.mark.req("G3")
@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("city.example.jp", True),
        ("www.city.example.jp", True),
        ("evilcity.example.jp", False),
        ("city.example.jp.evil.com", False),
        ("example.jp", False),
    ],
)
def test_allowlist_matches_domains_and_subdomains_only(host: str, ok: bool) -> None:
    """G3: a link may go to an allowed domain or its subdomains, never a look-alike."""
    assert domain_allowed(host, ["city.example.jp"]) is ok


@pytest.mark.req("G3")
def test_every_url_is_found_and_checked() -> None:
    """G3: link buttons and addresses written in text or card body are all checked; a
    phishing link or a typo'd domain is named with its field."""
    items = (
        "詳細は https://www.city.example.jp/a と https://clty.example.jp/b を参照",
        CardItem(
            title="t",
            body="www.city.example.jp/x",
            buttons=(LinkButton(label="x", url="https://evil.example.com/"),),
        ),
    )
    found = urls_of(items)
    assert [u for _, u in found] == [
        "https://www.city.example.jp/a",
        "https://clty.example.jp/b",
        "https://evil.example.com/",
        "www.city.example.jp/x",
    ]
    problems = url_problems(items, ["city.example.jp"])
    assert [w for w, _ in problems] == [
        "messages[0]",
        "messages[1].buttons[0].url",
        "messages[1].body",
    ]
    assert "clty.example.jp" in problems[0][1]


# -- images --------------------------------------------------------------------------------


def jpeg_with_gps(size: tuple[int, int] = (640, 480)) -> bytes:
    image = Image.new("RGB", size, (10, 120, 200))
    exif = Image.Exif()
    exif[0x010F] = "ExampleCam"
    exif[0x0112] = 6  # rotated: the stripped picture must be turned upright first
    exif[0x8825] = {1: "N", 2: (35.0, 41.0, 22.5), 3: "E", 4: (139.0, 41.0, 30.1)}
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif.tobytes(), comment=b"owner: Taro")
    return out.getvalue()


@pytest.mark.req("G3")
def test_jpeg_exif_gps_and_comments_are_stripped() -> None:
    """G3: a phone photo's EXIF (GPS position, camera) and comment never leave the box; the
    picture is turned upright by its orientation before the tag goes."""
    data = jpeg_with_gps()
    with Image.open(io.BytesIO(data)) as before:
        assert before.getexif().get(0x8825)
    prepared = prepare(data)
    for blob in (prepared.original, prepared.preview):
        with Image.open(io.BytesIO(blob)) as after:
            assert dict(after.getexif()) == {}
            assert "exif" not in after.info and "comment" not in after.info
        assert b"Exif" not in blob and b"Taro" not in blob and b"ExampleCam" not in blob
    assert (prepared.width, prepared.height) == (480, 640)
    assert prepared.content_type == "image/jpeg"


@pytest.mark.req("G3")
def test_png_text_chunks_are_stripped() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Location", "35.6895,139.6917")
    out = io.BytesIO()
    Image.new("RGBA", (300, 200), (0, 0, 0, 0)).save(out, "PNG", pnginfo=info)
    prepared = prepare(out.getvalue())
    assert prepared.content_type == "image/png" and b"Location" not in prepared.original
    with Image.open(io.BytesIO(prepared.preview)) as preview:
        assert preview.format == "JPEG"


def test_large_noisy_photo_fits_line_limits() -> None:
    """A large, hard-to-compress photo: original <= 10 MB, preview JPEG <= 1 MB and <= 1024 px."""
    rng = random.Random(3)
    noise = Image.frombytes("RGB", (3000, 2000), rng.randbytes(3000 * 2000 * 3))
    out = io.BytesIO()
    noise.save(out, "PNG")
    prepared = prepare(out.getvalue(), 64 * 1024 * 1024)
    assert len(prepared.original) <= 10 * 1024 * 1024
    assert len(prepared.preview) <= MAX_PREVIEW_BYTES
    with Image.open(io.BytesIO(prepared.preview)) as preview:
        assert max(preview.size) <= 1024


@pytest.mark.parametrize(
    ("data", "reason"),
    [(b"", "空"), (b"GIF89a....", "読み取れません"), (b"x" * 2000, "読み取れません")],
)
def test_not_an_image_is_refused_in_japanese(data: bytes, reason: str) -> None:
    with pytest.raises(ImageRefused) as caught:
        prepare(data)
    assert reason in caught.value.message_ja


def test_gif_is_refused() -> None:
    out = io.BytesIO()
    Image.new("P", (10, 10)).save(out, "GIF")
    with pytest.raises(ImageRefused, match="JPEG か PNG"):
        prepare(out.getvalue())


@pytest.mark.req("S7")
@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(["title", "body", "label", "url", "alt_text", "image_file_name"]),
    st.characters(categories=["Cc"]),
)
def test_no_card_field_takes_a_control_character(field: str, control: str) -> None:
    """S7: a control character in any text field of a card is refused (a card body keeps
    newlines and tabs); the same checks apply to images' file names."""
    fields = {"title": "健診", "body": "受付中", "alt_text": "", "image_file_name": ""}
    button = {"label": "詳しく", "url": "https://www.city.example.jp/a"}
    if field in button:
        button[field] = button[field] + control
    else:
        fields[field] = fields[field] + control
    allowed = field == "body" and control in "\n\r\t"
    build = lambda: CardItem(**fields, buttons=(LinkButton(**button),))  # type: ignore[arg-type]  # noqa: E731
    if allowed:
        assert build().body.endswith(control)
    else:
        with pytest.raises(ValidationError):
            build()
        with pytest.raises(ValidationError):
            ImageItem(media=MEDIA, file_name="p" + control + ".jpg")

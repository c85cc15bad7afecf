"""Message kinds a delivery carries, and their ONE mapping to LINE's wire shape (pure).

A delivery holds 1-5 items, in any mix:

- text: a plain string (as before this module existed, so stored deliveries stay valid);
- image: a picture uploaded to the appliance (`media`, the hex SHA-256 of its stored bytes);
- sticker: one of LINE's default stickers (`DEFAULT_STICKERS`);
- card: a Flex Message bubble with an optional hero image, a title, a body and up to three
  link buttons.

`to_line()` is the only place that knows LINE's JSON: the sender, the test send and the tests
(which validate its output against LINE's OpenAPI spec) all go through it. Image URLs are built
by a caller-supplied function, because only the daemon knows its public address and each
image's unguessable path. Link URLs are checked against the allowlist by `url_problems()`.
"""

from __future__ import annotations

import re
import unicodedata
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

MAX_LABEL = 20
"""LINE: an action label is at most 20 characters."""
MAX_URI = 1000
"""LINE: a URI action's uri is at most 1,000 characters."""
MAX_ALT_TEXT = 400
"""LINE allows 1,500; the notification shows far less, so Kairan keeps it short."""
MAX_CARD_TITLE = 100
MAX_CARD_BODY = 2000
MAX_BUTTONS = 3
MEDIA_ID = re.compile(r"^[0-9a-f]{64}$")
URL_IN_TEXT = re.compile(r"(?i)\b(?:https?://|www\.)[^\s<>\"'「」『』（）()、。]+")

# LINE's default stickers that any account may send (developers.line.biz "List of available
# stickers"): package id -> (Japanese name, first sticker id, last sticker id).
STICKER_PACKAGES: dict[str, tuple[str, int, int]] = {
    "446": ("ムーン・ブラウン・コニー", 1988, 2027),
    "789": ("サリー・ブラウン", 10855, 10894),
    "1070": ("ムーン・ジェームズ", 17839, 17878),
    "6136": ("LINEキャラクターズ（あいさつ）", 10551376, 10551399),
    "6325": ("ブラウン＆コニー（お仕事）", 10979904, 10979927),
    "6359": ("ブラウン＆フレンズ", 11069848, 11069871),
    "6362": ("ブラウン＆コニー（ていねい）", 11087920, 11087943),
    "6370": ("ブラウン（敬語）", 11088016, 11088039),
    "6632": ("LINEキャラクターズ（お祝い）", 11825374, 11825397),
    "8515": ("ブラウン＆サリー（ゆるふわ）", 16581242, 16581265),
    "8522": ("LINEフレンズ（日常）", 16581266, 16581289),
    "8525": ("ブラウン＆コニー（気持ち）", 16581290, 16581313),
    "11537": ("ブラウン＆コニー＆サリー", 52002734, 52002773),
    "11538": ("チョコ＆フレンズ", 51626494, 51626533),
    "11539": ("ユニバースター BT21", 52114110, 52114149),
}


def is_default_sticker(package_id: str, sticker_id: str) -> bool:
    package = STICKER_PACKAGES.get(package_id)
    if package is None or not sticker_id.isdigit():
        return False
    return package[1] <= int(sticker_id) <= package[2]


def default_stickers() -> list[tuple[str, str, str]]:
    """(package id, sticker id, package name) of every default sticker, in LINE's order."""
    return [
        (pkg, str(sid), name)
        for pkg, (name, first, last) in STICKER_PACKAGES.items()
        for sid in range(first, last + 1)
    ]


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


MESSAGE_WHITESPACE = frozenset("\n\r\t")
"""The only control characters a message may hold (a title none at all)."""
MULTILINE_FIELDS = frozenset({"body"})
"""Text fields of message items that may hold MESSAGE_WHITESPACE; every other text field of
every item (card title, button label and URL, alt text, file names...) holds none."""


def control_character(text: str, allowed: frozenset[str] = frozenset()) -> str | None:
    """The first control character of TEXT (C0, DEL, C1, or a lone surrogate), or None."""
    if text.isprintable() or not any(not c.isprintable() for c in text):
        return None
    for c in text:
        if c not in allowed and unicodedata.category(c) in ("Cc", "Cs"):
            return c
    return None


def refuse_controls(text: str, allowed: frozenset[str]) -> None:
    found = control_character(text, allowed)
    if found is not None:
        # The message is for pydantic's error; the staff API shows its Japanese text (S7).
        raise PydanticCustomError(
            "control_characters",
            "contains the control character U+{code:04X}",
            {"code": ord(found)},
        )


class _Item(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*")
    @classmethod
    def _no_control_characters(cls, value: Any, info: ValidationInfo) -> Any:
        # Every text field of every kind (S7): NUL, ESC, C1 controls and lone surrogates
        # never reach LINE or a staff screen; only a card body keeps newlines and tabs.
        if isinstance(value, str):
            allowed = MESSAGE_WHITESPACE if info.field_name in MULTILINE_FIELDS else frozenset()
            refuse_controls(value, allowed)
        return value


class ImageItem(_Item):
    kind: Literal["image"] = "image"
    media: Annotated[str, Field(pattern=MEDIA_ID.pattern)]
    """The uploaded image (POST /v1/media answers this id)."""
    file_name: Annotated[str, Field(max_length=200)] = ""
    """The name the picture had on the terminal (shown to staff, never sent)."""


class StickerItem(_Item):
    kind: Literal["sticker"] = "sticker"
    package_id: Annotated[str, Field(min_length=1, max_length=12)]
    sticker_id: Annotated[str, Field(min_length=1, max_length=12)]

    @field_validator("sticker_id")
    @classmethod
    def _default_set(cls, value: str, info: Any) -> str:
        package = info.data.get("package_id")
        if package is not None and not is_default_sticker(package, value):
            raise ValueError("not one of LINE's default stickers (see STICKER_PACKAGES)")
        return value


class LinkButton(_Item):
    label: Annotated[str, Field(min_length=1, max_length=MAX_LABEL)]
    """Button text, e.g. 詳しくはこちら (LINE: at most 20 characters)."""
    url: Annotated[str, Field(min_length=1, max_length=MAX_URI)]

    @field_validator("url")
    @classmethod
    def _https(cls, value: str) -> str:
        if not https_host(value):
            raise ValueError("a link must be a complete https:// address")
        return value


class CardItem(_Item):
    kind: Literal["card"] = "card"
    title: Annotated[str, Field(min_length=1, max_length=MAX_CARD_TITLE)]
    body: Annotated[str, Field(max_length=MAX_CARD_BODY)] = ""
    image: Annotated[str, Field(pattern=MEDIA_ID.pattern)] | None = None
    """Optional hero image (an uploaded media id)."""
    image_file_name: Annotated[str, Field(max_length=200)] = ""
    buttons: Annotated[tuple[LinkButton, ...], Field(max_length=MAX_BUTTONS)] = ()
    alt_text: Annotated[str, Field(max_length=MAX_ALT_TEXT)] = ""
    """What the notification and older clients show; empty: the title."""

    @field_validator("title")
    @classmethod
    def _title_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the card needs a title")
        return value


RichItem = Annotated[ImageItem | StickerItem | CardItem, Field(discriminator="kind")]
MessageItem = str | RichItem
"""One message of a delivery: a string is a text message."""


def kind_of(item: MessageItem) -> str:
    return "text" if isinstance(item, str) else item.kind


def media_of(items: Iterable[MessageItem]) -> list[str]:
    """Media ids the items use, in order, without repeats."""
    out: list[str] = []
    for item in items:
        ref = (
            item.media
            if isinstance(item, ImageItem)
            else item.image
            if isinstance(item, CardItem)
            else None
        )
        if ref and ref not in out:
            out.append(ref)
    return out


def parse_item(raw: Any) -> MessageItem:
    """A stored item (a string or the item's JSON object) back to its model."""
    if isinstance(raw, str):
        return raw
    kind = raw.get("kind") if isinstance(raw, dict) else None
    models: dict[str, type[_Item]] = {"image": ImageItem, "sticker": StickerItem, "card": CardItem}
    model = models.get(str(kind))
    if model is None:
        raise ValueError(f"unknown message kind {kind!r}")
    return model.model_validate(raw)  # type: ignore[return-value]


def dump_item(item: MessageItem) -> Any:
    return item if isinstance(item, str) else item.model_dump(mode="json")


# -- links and the allowlist -----------------------------------------------------------------


def https_host(url: str) -> str | None:
    """The lower-case host of a complete https:// URL, or None."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() != "https" or not parts.hostname or parts.username or parts.password:
        return None
    if any(c.isspace() for c in url):
        return None
    return parts.hostname.lower().rstrip(".")


def normalise_domain(domain: str) -> str:
    return domain.strip().lower().rstrip(".").removeprefix("*.")


def domain_allowed(host: str, allowed: Iterable[str]) -> bool:
    """HOST is an allowed domain or a subdomain of one (city.example.jp allows
    www.city.example.jp, never evilcity.example.jp)."""
    for domain in allowed:
        d = normalise_domain(domain)
        if d and (host == d or host.endswith("." + d)):
            return True
    return False


def urls_of(items: Iterable[MessageItem]) -> list[tuple[str, str]]:
    """(field path, URL) of every link in the items: buttons and addresses written in text."""
    out: list[tuple[str, str]] = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            out += [(f"messages[{i}]", m.group(0)) for m in URL_IN_TEXT.finditer(item)]
        elif isinstance(item, CardItem):
            for j, button in enumerate(item.buttons):
                out.append((f"messages[{i}].buttons[{j}].url", button.url))
            for text, name in ((item.title, "title"), (item.body, "body")):
                out += [(f"messages[{i}].{name}", m.group(0)) for m in URL_IN_TEXT.finditer(text)]
    return out


def url_problems(items: Sequence[MessageItem], allowed: Iterable[str]) -> list[tuple[str, str]]:
    """(field path, Japanese explanation) for every link not allowed to go out."""
    allowed = list(allowed)
    out = []
    for where, url in urls_of(items):
        host = https_host(url)
        if host is None:
            out.append((where, f"リンク {url} は https:// で始まる完全なアドレスにしてください。"))
        elif not domain_allowed(host, allowed):
            out.append(
                (
                    where,
                    f"リンク先 {host} は送信を許可されたドメインではありません"
                    "（管理者が許可したドメインだけに送れます）。",
                )
            )
    return out


# -- the one mapping to LINE's wire shape -----------------------------------------------------

MediaUrl = Callable[[str, Literal["original", "preview"]], str]
"""(media id, variant) -> absolute https URL where LINE can fetch it."""


def card_bubble(card: CardItem, media_url: MediaUrl) -> dict[str, Any]:
    body: list[dict[str, Any]] = [
        {"type": "text", "text": card.title, "weight": "bold", "size": "lg", "wrap": True}
    ]
    if card.body.strip():
        body.append(
            {"type": "text", "text": card.body, "size": "sm", "wrap": True, "color": "#333333"}
        )
    bubble: dict[str, Any] = {
        "type": "bubble",
        "body": {"type": "box", "layout": "vertical", "spacing": "md", "contents": body},
    }
    if card.image:
        bubble["hero"] = {
            "type": "image",
            "url": media_url(card.image, "preview"),
            "size": "full",
            "aspectMode": "fit",
            "aspectRatio": "20:13",
        }
    if card.buttons:
        bubble["footer"] = {
            "type": "box",
            "layout": "vertical",
            "spacing": "sm",
            "contents": [
                {
                    "type": "button",
                    "style": "primary" if j == 0 else "secondary",
                    "height": "sm",
                    "action": {"type": "uri", "label": b.label, "uri": b.url},
                }
                for j, b in enumerate(card.buttons)
            ],
        }
    return bubble


def to_line(item: MessageItem, media_url: MediaUrl, prefix: str = "") -> dict[str, Any]:
    """LINE's JSON for one item (PREFIX goes before the text of a text message or the title of
    a card: the 【テスト送信】 mark)."""
    if isinstance(item, str):
        return {"type": "text", "text": prefix + item}
    if isinstance(item, ImageItem):
        return {
            "type": "image",
            "originalContentUrl": media_url(item.media, "original"),
            "previewImageUrl": media_url(item.media, "preview"),
        }
    if isinstance(item, StickerItem):
        return {"type": "sticker", "packageId": item.package_id, "stickerId": item.sticker_id}
    titled = item.model_copy(update={"title": prefix + item.title}) if prefix else item
    alt = prefix + (item.alt_text or item.title)
    return {"type": "flex", "altText": alt[:1500], "contents": card_bubble(titled, media_url)}


def to_line_all(
    items: Iterable[MessageItem], media_url: MediaUrl, prefix: str = ""
) -> list[dict[str, Any]]:
    return [to_line(item, media_url, prefix) for item in items]


def check_text(i: int, text: str, limit: int) -> str | None:
    if not text.strip():
        return f"message {i + 1} is empty"
    units = _utf16(text)
    if units > limit:
        return f"message {i + 1} is {units} UTF-16 units long; LINE allows {limit}"
    return None

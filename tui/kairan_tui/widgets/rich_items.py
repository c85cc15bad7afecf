"""Editors for the message kinds beyond text: image, sticker and card.

Each editor is one message of the delivery, mounted among the text editors of 配信作成 and
numbered like them. `item()` returns the wire model (kairand.api.schema) or raises
ItemProblem with a Japanese explanation. Pictures are picked from the image folder on this
terminal (`~/kairan-images/`, or `KAIRAN_IMAGES`), read here and uploaded through the staff API;
the daemon strips their metadata and keeps them.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from pydantic import ValidationError
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Button, Input, Label, Select, Static, TextArea

from kairan_tui.widgets.message_editor import MessageEditor
from kairand.api import schema

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
MAX_IMAGE_FILE = 20 * 1024 * 1024


class ItemProblem(ValueError):
    """The editor's content cannot be sent yet; the text says what to fix (Japanese)."""


def image_folder() -> Path:
    configured = os.environ.get("KAIRAN_IMAGES", "")
    return Path(configured).expanduser() if configured else Path.home() / "kairan-images"


@dataclass(frozen=True)
class ImageFile:
    path: Path
    size: int

    @property
    def label(self) -> str:
        return f"{self.path.name}（{human_size(self.size)}）"


def human_size(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB"
    return f"{max(1, size // 1024)} KB"


def list_images(folder: Path) -> list[ImageFile]:
    """JPEG/PNG files directly in FOLDER, by name (blocking: call off the event loop)."""
    try:
        entries = sorted(folder.iterdir(), key=lambda p: p.name)
    except OSError:
        return []
    out = []
    for entry in entries:
        if entry.suffix.lower() in IMAGE_SUFFIXES and entry.is_file():
            out.append(ImageFile(entry, entry.stat().st_size))
    return out


def content_type_of(path: Path) -> str:
    return "image/png" if path.suffix.lower() == ".png" else "image/jpeg"


def _japanese(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    if "url" in where:
        return "リンク先は https:// で始まる完全なアドレスを入力してください。"
    if "label" in where:
        return f"ボタンの文字は1〜{schema.MAX_LABEL}文字で入力してください。"
    if "title" in where:
        return "カードの見出しを入力してください（100文字まで）。"
    if "body" in where:
        return "カードの本文が長すぎます（2,000文字まで）。"
    return "入力内容を確認してください。"


class RichItemEditor(Vertical):
    """Base of the non-text editors."""

    KIND_LABEL: ClassVar[str] = ""
    DEFAULT_CSS = """
    RichItemEditor { height: auto; margin-bottom: 1; border: round $panel-lighten-2;
                     padding: 0 1; }
    RichItemEditor .field-label { color: $text-muted; }
    RichItemEditor .item-status { color: $text-muted; height: auto; }
    RichItemEditor .item-status.error { color: $error; }
    RichItemEditor Horizontal { height: auto; }
    RichItemEditor .button-label { width: 14; }
    RichItemEditor .button-url { width: 1fr; }
    """

    @dataclass
    class Changed(Message):
        editor: RichItemEditor

    def __init__(self, number: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.number = number

    def heading(self) -> Label:
        return Label(f"メッセージ {self.number}（{self.KIND_LABEL}）", classes="field-label")

    def item(self) -> schema.ImageItem | schema.StickerItem | schema.CardItem:
        raise NotImplementedError

    def changed(self) -> None:
        self.post_message(self.Changed(self))


class _ImageChoice(Widget):
    """A picture from the image folder, uploaded when chosen."""

    DEFAULT_CSS = "_ImageChoice { height: auto; }"

    @dataclass
    class Uploaded(Message):
        choice: _ImageChoice

    def __init__(self, optional: bool, media: schema.MediaOut | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.optional = optional
        self.media = media
        self.files: list[ImageFile] = []

    def compose(self) -> ComposeResult:
        yield Select[str]([], prompt="画像を選ぶ", allow_blank=True, classes="image-select")
        yield Static(self._status(), classes="item-status")

    def _status(self) -> str:
        if self.media is not None:
            return (
                f"{self.media.file_name}：{self.media.width}×{self.media.height}、"
                f"{human_size(self.media.bytes)}（位置情報などは削除済み）"
            )
        return f"画像フォルダ：{image_folder()}"

    def on_mount(self) -> None:
        self.load_files()

    @work(exit_on_error=False, group="image-files")
    async def load_files(self) -> None:
        folder = image_folder()
        self.files = await asyncio.to_thread(list_images, folder)
        select = self.query_one(Select)
        select.set_options([(f.label, str(f.path)) for f in self.files])
        if not self.files:
            self.query_one(".item-status", Static).update(
                f"{folder} に JPEG / PNG の画像がありません。画像を置いてから選んでください。"
            )

    async def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        if not isinstance(event.value, str):
            if self.optional:
                self.media = None
                self.query_one(".item-status", Static).update(self._status())
                self.post_message(self.Uploaded(self))
            return
        self.upload(Path(event.value))

    @work(exit_on_error=False, exclusive=True, group="image-upload")
    async def upload(self, path: Path) -> None:
        status = self.query_one(".item-status", Static)
        status.remove_class("error")
        status.update(f"{path.name} を送っています…")
        try:
            size = (await asyncio.to_thread(path.stat)).st_size
            if size > MAX_IMAGE_FILE:
                raise ItemProblem(f"{path.name} は大きすぎます（20 MB まで）。")
            data = await asyncio.to_thread(path.read_bytes)
            self.media = await self.app.api.upload_image(  # type: ignore[attr-defined]
                data, path.name, content_type_of(path)
            )
        except ItemProblem as exc:
            status.add_class("error")
            status.update(str(exc))
            return
        except OSError:
            status.add_class("error")
            status.update(f"{path.name} を読み取れませんでした。")
            return
        except Exception as exc:  # ApiError: the daemon's Japanese reason
            status.add_class("error")
            status.update(getattr(exc, "message", "画像を送れませんでした。"))
            return
        status.update(self._status())
        self.post_message(self.Uploaded(self))


class ImageItemEditor(RichItemEditor):
    KIND_LABEL = "画像"

    def __init__(self, number: int, item: schema.ImageItem | None = None, **kwargs) -> None:
        super().__init__(number, **kwargs)
        self._initial = item

    def compose(self) -> ComposeResult:
        yield self.heading()
        media = None
        if self._initial is not None:
            media = schema.MediaOut(
                id=self._initial.media,
                content_type="",
                width=0,
                height=0,
                bytes=0,
                preview_bytes=0,
                file_name=self._initial.file_name,
            )
        yield _ImageChoice(optional=False, media=media)

    def on__image_choice_uploaded(self, event: _ImageChoice.Uploaded) -> None:
        event.stop()
        self.changed()

    def item(self) -> schema.ImageItem:
        media = self.query_one(_ImageChoice).media
        if media is None:
            raise ItemProblem(f"メッセージ {self.number}：送る画像を選んでください。")
        return schema.ImageItem(media=media.id, file_name=media.file_name)


def sticker_packages() -> list[tuple[str, str]]:
    return [(name, pkg) for pkg, (name, _, _) in schema.STICKER_PACKAGES.items()]


def stickers_of(package: str) -> list[tuple[str, str]]:
    _, first, last = schema.STICKER_PACKAGES[package]
    return [(f"No.{i - first + 1}（ID {i}）", str(i)) for i in range(first, last + 1)]


class StickerItemEditor(RichItemEditor):
    KIND_LABEL = "スタンプ"

    def __init__(self, number: int, item: schema.StickerItem | None = None, **kwargs) -> None:
        super().__init__(number, **kwargs)
        self._initial = item or schema.StickerItem(package_id="11537", sticker_id="52002734")

    def compose(self) -> ComposeResult:
        yield self.heading()
        yield Static(
            "LINE の標準スタンプから選びます（だれでも受け取れます）。", classes="item-status"
        )
        yield Select(
            sticker_packages(),
            value=self._initial.package_id,
            allow_blank=False,
            classes="sticker-package",
        )
        yield Select(
            stickers_of(self._initial.package_id),
            value=self._initial.sticker_id,
            allow_blank=False,
            classes="sticker-id",
        )

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        if event.select.has_class("sticker-package") and isinstance(event.value, str):
            ids = self.query_one(".sticker-id", Select)
            options = stickers_of(event.value)
            ids.set_options(options)
            ids.value = options[0][1]
        self.changed()

    def item(self) -> schema.StickerItem:
        package = self.query_one(".sticker-package", Select).value
        sticker = self.query_one(".sticker-id", Select).value
        if not isinstance(package, str) or not isinstance(sticker, str):
            # Just mounted: the Selects take their values on the next refresh.
            package, sticker = self._initial.package_id, self._initial.sticker_id
        try:
            return schema.StickerItem(package_id=str(package), sticker_id=str(sticker))
        except ValidationError:
            raise ItemProblem(f"メッセージ {self.number}：スタンプを選び直してください。") from None


class CardItemEditor(RichItemEditor):
    """A card: optional picture, a title, a body and up to three link buttons."""

    KIND_LABEL = "カード"

    def __init__(self, number: int, item: schema.CardItem | None = None, **kwargs) -> None:
        super().__init__(number, **kwargs)
        self._initial = item

    def compose(self) -> ComposeResult:
        item = self._initial
        yield self.heading()
        yield Label("画像（任意）", classes="field-label")
        media = None
        if item is not None and item.image:
            media = schema.MediaOut(
                id=item.image,
                content_type="",
                width=0,
                height=0,
                bytes=0,
                preview_bytes=0,
                file_name=item.image_file_name,
            )
        yield _ImageChoice(optional=True, media=media)
        yield Label("見出し", classes="field-label")
        yield Input(
            item.title if item else "",
            placeholder="例：健康診断のお知らせ",
            max_length=100,
            classes="card-title",
        )
        yield Label("本文", classes="field-label")
        area = TextArea(item.body if item else "", soft_wrap=True, classes="card-body")
        area.styles.height = 4
        yield area
        yield Label(
            f"リンクボタン（{schema.MAX_BUTTONS}つまで。許可されたドメインだけ）",
            classes="field-label",
        )
        buttons = list(item.buttons) if item else []
        for j in range(schema.MAX_BUTTONS):
            existing = buttons[j] if j < len(buttons) else None
            with Horizontal():
                yield Input(
                    existing.label if existing else ("詳しくはこちら" if j == 0 else ""),
                    placeholder="ボタンの文字",
                    max_length=schema.MAX_LABEL,
                    classes=f"button-label button-label-{j}",
                )
                yield Input(
                    existing.url if existing else "",
                    placeholder="https://www.city.example.jp/...",
                    classes=f"button-url button-url-{j}",
                )

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.changed()

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        event.stop()
        self.changed()

    def on__image_choice_uploaded(self, event: _ImageChoice.Uploaded) -> None:
        event.stop()
        self.changed()

    def item(self) -> schema.CardItem:
        buttons = []
        for j in range(schema.MAX_BUTTONS):
            label = self.query_one(f".button-label-{j}", Input).value.strip()
            url = self.query_one(f".button-url-{j}", Input).value.strip()
            if url:
                buttons.append({"label": label, "url": url})
        media = self.query_one(_ImageChoice).media
        try:
            return schema.CardItem.model_validate(
                {
                    "title": self.query_one(".card-title", Input).value.strip(),
                    "body": self.query_one(".card-body", TextArea).text.strip(),
                    "image": media.id if media else None,
                    "image_file_name": media.file_name if media else "",
                    "buttons": buttons,
                }
            )
        except ValidationError as exc:
            raise ItemProblem(f"メッセージ {self.number}（カード）：{_japanese(exc)}") from None


EDITORS: dict[str, type[RichItemEditor]] = {
    "image": ImageItemEditor,
    "sticker": StickerItemEditor,
    "card": CardItemEditor,
}


def editor_for(number: int, item: schema.MessageItem) -> Widget:
    """The editor for a stored message (a text editor for a string)."""
    if isinstance(item, str):
        return MessageEditor(number, item, id=f"message-{number}")
    return EDITORS[item.kind](number, item, id=f"message-{number}")  # type: ignore[call-arg]


def collect_items(container: Widget, *, strict: bool) -> list[schema.MessageItem]:
    """The messages in order. STRICT: raise ItemProblem for an incomplete rich message
    (sending); otherwise skip it (the live preview)."""
    out: list[schema.MessageItem] = []
    for child in container.children:
        if isinstance(child, MessageEditor):
            if child.text.strip():
                out.append(child.text)
        elif isinstance(child, RichItemEditor):
            try:
                out.append(child.item())
            except ItemProblem:
                if strict:
                    raise
            except NoMatches:  # just added: its fields are not mounted yet
                if strict:
                    raise ItemProblem(f"メッセージ {child.number} を入力してください。") from None
    return out


class RichAddBar(Horizontal):
    """「画像を追加」「スタンプを追加」「カードを追加」: asks the screen to add an editor."""

    DEFAULT_CSS = """
    RichAddBar { layout: grid; grid-size: 2; grid-gutter: 0 1; height: auto; }
    RichAddBar Button { width: 1fr; }
    """

    @dataclass
    class Add(Message):
        kind: str

    def compose(self) -> ComposeResult:
        yield Button("画像を追加", id="add-image")
        yield Button("スタンプを追加", id="add-sticker")
        yield Button("カードを追加", id="add-card")
        yield Button("定型文", id="add-template")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        kind = (event.button.id or "").removeprefix("add-")
        self.post_message(self.Add(kind))

"""How a non-text message looks in the resident's chat: a card's layout (picture,
title, body, buttons), a picture, a sticker. Used by the LINE preview of 配信作成 and by the
approval screen, where every link is shown in full."""

from __future__ import annotations

from textual.containers import Vertical
from textual.widget import Widget
from textual.widgets import Static

from kairan_tui.widgets.wrapped import WrappedText
from kairand.api import schema


class CardBubble(Vertical):
    """The card as LINE lays it out: the picture on top, the title, the body, then the
    buttons (each with its full address underneath, so staff see where it leads)."""

    DEFAULT_CSS = """
    CardBubble { background: $surface; border: round $panel-lighten-2; height: auto;
                 width: 1fr; max-width: 48; margin: 0 2 0 1; }
    CardBubble .hero { background: $panel; color: $text-muted; height: 3;
                       content-align: center middle; }
    CardBubble .card-title { text-style: bold; padding: 0 1; height: auto; }
    CardBubble .card-text { padding: 0 1; height: auto; }
    CardBubble .card-button { background: $primary 40%; content-align: center middle;
                              height: 1; margin: 1 1 0 1; }
    CardBubble .card-button.secondary { background: $panel-lighten-1; }
    CardBubble .card-url { color: $text-muted; padding: 0 1; height: auto; }
    """

    def __init__(self, card: schema.CardItem, **kwargs) -> None:
        super().__init__(**kwargs)
        self.card = card

    def compose(self):
        card = self.card
        if card.image:
            name = card.image_file_name or "画像"
            yield Static(f"［画像］{name}", classes="hero", markup=False)
        yield Static(card.title, classes="card-title", markup=False)
        if card.body.strip():
            yield Static(card.body, classes="card-text", markup=False)
        for j, button in enumerate(card.buttons):
            classes = "card-button" + (" secondary" if j else "")
            yield Static(button.label, classes=classes, markup=False)
            yield Static(button.url, classes="card-url", markup=False)


def preview_widget(item: schema.MessageItem) -> Widget:
    """One chat bubble for ITEM (strings are plain text bubbles)."""
    if isinstance(item, str):
        # Japanese line breaking (禁則処理), as LINE's apps wrap text.
        return WrappedText(item, classes="bubble")
    if isinstance(item, schema.CardItem):
        return CardBubble(item)
    if isinstance(item, schema.ImageItem):
        name = item.file_name or "画像"
        return Static(f"［画像］{name}", classes="bubble picture", markup=False)
    package = schema.STICKER_PACKAGES.get(item.package_id, ("スタンプ", 0, 0))
    number = int(item.sticker_id) - package[1] + 1 if item.sticker_id.isdigit() else 0
    return Static(f"［スタンプ］{package[0]} No.{number}", classes="bubble sticker", markup=False)


def describe_item(item: schema.MessageItem) -> str:
    """One line for lists (history, approvals): the kind and what it shows."""
    if isinstance(item, str):
        return item
    if isinstance(item, schema.CardItem):
        links = "、".join(f"{b.label} → {b.url}" for b in item.buttons)
        return f"［カード］{item.title}" + (f"（{links}）" if links else "")
    if isinstance(item, schema.ImageItem):
        return f"［画像］{item.file_name or item.media[:12]}"
    name = schema.STICKER_PACKAGES.get(item.package_id, ("スタンプ", 0, 0))[0]
    return f"［スタンプ］{name}"

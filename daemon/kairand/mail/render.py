"""A delivery's messages as one plain-text mail (pure).

LINE shows a delivery as bubbles; a mail carries the same content as text: each text message
in order, a card as its title, body and each button's label with its URL, and a note where
an image or a sticker was (mail alerts carry no attachment: older phones and filters drop
them). The subject is the first line of the first text, marked 【緊急】 for an urgent alert.
"""

from __future__ import annotations

from collections.abc import Sequence

from kairand.delivery.messages import CardItem, ImageItem, MessageItem

SUBJECT_CHARS = 40
"""Japanese phones show about this many characters of a subject."""
IMAGE_NOTE = "（画像はLINEでご覧いただけます）"
DEFAULT_SUBJECT = "お知らせ"


def alert_text(items: Sequence[MessageItem], urgent: bool) -> tuple[str, str]:
    """(subject, body) of the mail carrying ITEMS."""
    parts: list[str] = []
    for item in items:
        if isinstance(item, str):
            parts.append(item)
        elif isinstance(item, CardItem):
            lines = [f"■{item.title}"]
            if item.body:
                lines.append(item.body)
            lines.extend(f"{button.label}：{button.url}" for button in item.buttons)
            parts.append("\n".join(lines))
        elif isinstance(item, ImageItem):
            parts.append(IMAGE_NOTE)
        # A sticker carries no information a mail reader misses.
    body = "\n\n".join(part.strip("\n") for part in parts if part.strip())
    first = next((line.strip() for line in body.splitlines() if line.strip()), "")
    first = first.lstrip("■")
    subject = first[:SUBJECT_CHARS] + ("…" if len(first) > SUBJECT_CHARS else "")
    subject = subject or DEFAULT_SUBJECT
    if urgent:
        subject = f"【緊急】{subject}"
    return subject, body + "\n"

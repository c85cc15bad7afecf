"""A delivery's messages as one plain-text mail (kairand.mail.render)."""

from __future__ import annotations

import pytest

from kairand.delivery.messages import CardItem, ImageItem, LinkButton, StickerItem
from kairand.mail.render import DEFAULT_SUBJECT, IMAGE_NOTE, SUBJECT_CHARS, alert_text


@pytest.mark.req("K9")
def test_texts_cards_and_images_become_one_body_with_the_first_line_as_subject() -> None:
    card = CardItem(
        title="避難所のご案内",
        body="旭小学校を開設しました。",
        buttons=(LinkButton(label="地図", url="https://www.city.example.jp/map"),),
    )
    subject, body = alert_text(
        ["大雨警報が発表されました。\n早めの避難を。", card, ImageItem(media="a" * 64)], False
    )
    assert subject == "大雨警報が発表されました。"
    assert body == (
        "大雨警報が発表されました。\n早めの避難を。\n\n"
        "■避難所のご案内\n旭小学校を開設しました。\n地図：https://www.city.example.jp/map\n\n"
        f"{IMAGE_NOTE}\n"
    )


@pytest.mark.req("K9")
def test_urgent_marks_the_subject_and_long_lines_are_cut() -> None:
    subject, _ = alert_text(["あ" * 60], True)
    assert subject == "【緊急】" + "あ" * SUBJECT_CHARS + "…"


def test_a_sticker_only_delivery_still_has_a_subject() -> None:
    subject, body = alert_text([StickerItem(package_id="446", sticker_id="1988")], False)
    assert subject == DEFAULT_SUBJECT
    assert body == "\n"

"""Rich messages in the TUI: composing image, sticker and card messages (the picture picked from the
image folder and uploaded), the preview showing the card's layout, a recurring delivery, and the
calendar of upcoming sends — with snapshots at 80×24 and 120×36."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image
from rich.console import Console
from textual.widgets import Input

from kairan_tui.modals.confirm import ConfirmModal
from kairan_tui.modals.templates import TemplatesModal
from kairan_tui.screens.calendar import series_table
from kairan_tui.widgets.card_preview import CardBubble
from kairan_tui.widgets.recurrence_form import RecurrenceForm
from kairan_tui.widgets.rich_items import (
    CardItemEditor,
    ImageItemEditor,
    StickerItemEditor,
    list_images,
)
from tests.support.tui_helpers import wait_until

SIZES = [(80, 24), (120, 36)]


@pytest.fixture
def images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "kairan-images"
    folder.mkdir()
    for name, color in (("健診ポスター.jpg", (200, 60, 60)), ("map.png", (20, 120, 200))):
        out = io.BytesIO()
        Image.new("RGB", (640, 480), color).save(out, "PNG" if name.endswith("png") else "JPEG")
        (folder / name).write_bytes(out.getvalue())
    (folder / "notes.txt").write_text("not an image")
    monkeypatch.setenv("KAIRAN_IMAGES", str(folder))
    return folder


def test_image_folder_lists_jpeg_and_png_with_sizes(images: Path) -> None:
    files = list_images(images)
    assert [f.path.name for f in files] == ["map.png", "健診ポスター.jpg"]
    assert all(f.size > 0 and "KB" in f.label for f in files)


async def fill_card(pilot, app, with_image: bool = True) -> CardItemEditor:
    await pilot.press("f3")
    await wait_until(pilot, lambda: bool(app.screen.query("#segment-all")))
    app.screen.query_one("#segment-all").value = True
    app.screen.query_one("#title").value = "健診のお知らせ"
    app.screen.query_one("#message-1 TextArea").text = "今年の健康診断のご案内です。"
    app.screen.query_one("#add-card").press()
    await wait_until(pilot, lambda: bool(app.screen.query(CardItemEditor)))
    card = app.screen.query_one(CardItemEditor)
    await wait_until(
        pilot, lambda: bool(card.query(".button-url-2")) and bool(card.query(".image-select"))
    )
    card.query_one(".card-title").value = "健康診断 6月10日（水）"
    card.query_one(".card-body").text = "市民センターで行います。予約はボタンから。"
    card.query_one(".button-url-0").value = "https://www.city.example.jp/kenshin"
    if with_image:
        await wait_until(pilot, lambda: bool(card.query_one(".image-select")._options[1:]))
        select = card.query_one(".image-select")
        select.value = select._options[2][1]  # 健診ポスター.jpg
        await wait_until(pilot, lambda: card.item().image is not None)
    return card


@pytest.mark.req("N4")
async def test_compose_card_image_and_sticker_and_submit(app_for, fake, images: Path) -> None:
    """N4: staff add a card (picture from the folder, uploaded through the API), a picture and a
    sticker; the preview lays out the card; the delivery saved carries every kind in order."""
    fake.state.rich_routes = True
    app = app_for("ito")
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_until(pilot, lambda: app.me is not None)
        card = await fill_card(pilot, app)
        app.screen.query_one("#add-image").press()
        await wait_until(pilot, lambda: bool(app.screen.query(ImageItemEditor)))
        image = app.screen.query_one(ImageItemEditor)
        await wait_until(pilot, lambda: bool(image.query(".image-select")))
        await wait_until(pilot, lambda: bool(image.query_one(".image-select")._options[1:]))
        image.query_one(".image-select").value = image.query_one(".image-select")._options[1][1]
        await wait_until(pilot, lambda: image.query_one("_ImageChoice").media is not None)
        app.screen.query_one("#add-sticker").press()
        await wait_until(pilot, lambda: bool(app.screen.query(StickerItemEditor)))
        await wait_until(pilot, lambda: bool(app.screen.query(CardBubble)))
        bubble = app.screen.query_one(CardBubble)
        assert (
            bubble.card.title == "健康診断 6月10日（水）" and bubble.card.image == card.item().image
        )
        content = app.screen.content(for_sending=False)
        kinds = [m if isinstance(m, str) else m.kind for m in content.messages]
        assert kinds == ["今年の健康診断のご案内です。", "card", "image", "sticker"]
        names = sorted(m["file_name"] for m in fake.state.media.values())
        assert names == ["map.png", "健診ポスター.jpg"]


async def test_card_without_valid_link_is_refused_with_japanese(
    app_for, fake, images: Path
) -> None:
    fake.state.rich_routes = True
    app = app_for("ito")
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_until(pilot, lambda: app.me is not None)
        card = await fill_card(pilot, app, with_image=False)
        card.query_one(".button-url-0", Input).value = "http://insecure.example.jp"
        with pytest.raises(Exception, match="https://"):
            app.screen.content(for_sending=True)


@pytest.mark.req("N4")
async def test_recurring_delivery_is_submitted_as_a_series(app_for, fake, images: Path) -> None:
    """N4: choosing 繰り返し配信 shows the rule form (第2・第4水曜 by default), the rule in words
    with the next dates, and 承認依頼 creates and submits a series."""
    fake.state.rich_routes = True
    app = app_for("ito")
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_until(pilot, lambda: app.me is not None)
        await pilot.press("f3")
        await wait_until(pilot, lambda: bool(app.screen.query("#segment-all")))
        app.screen.query_one("#title").value = "ごみの日"
        app.screen.query_one("#message-1 TextArea").text = "明日は燃えるごみの日です。"
        app.screen.query_one("#schedule").value = "repeat"
        form = app.screen.query_one(RecurrenceForm)
        form.query_one("#rule-frequency").value = "monthly_weekday"
        await wait_until(
            pilot, lambda: "第2・第4 水曜" in str(form.query_one("#rule-summary").render())
        )
        assert "次の配信：" in str(form.query_one("#rule-summary").render())
        app.screen.query_one("#segment-all").value = True
        await pilot.pause(0.3)
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        assert "第2・第4 水曜" in app.screen.body
        await pilot.pause(0.6)  # the dialog ignores keys pressed within 0.5 s of opening
        await pilot.press("y")
        await wait_until(pilot, lambda: bool(fake.state.series), limit=5)
        created = next(iter(fake.state.series.values()))
        assert created["status"] == "pending_approval" and created["rule"]["nth"] == [2, 4]


def _open_compose_with_card(app, images):
    async def run_before(pilot) -> None:
        await wait_until(pilot, lambda: app.me is not None)
        await fill_card(pilot, app)
        await wait_until(pilot, lambda: bool(app.screen.query(CardBubble)))
        await pilot.pause(0.4)
        app.screen.set_focus(None)
        app.screen.query_one("#compose-side").scroll_home(animate=False)
        await pilot.pause(0.2)

    return run_before


@pytest.mark.req("N4")
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_card_preview_snapshot(size, app_for, fake, images, snap_compare) -> None:
    """N4: the preview shows the card's layout (picture, title, body, button and its address)
    in Japanese at both terminal sizes."""
    fake.state.rich_routes = True
    app = app_for("ito")
    assert snap_compare(app, terminal_size=size, run_before=_open_compose_with_card(app, images))


@pytest.mark.req("N4")
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_calendar_snapshot(size, app_for, fake, snap_compare) -> None:
    """N4: 配信予定 lists the upcoming sends of a recurring delivery (第2・第4水曜) and a
    scheduled one, and shows the series' rule and next dates."""
    fake.state.rich_routes = True
    fake.state.series[1] = {
        "id": 1,
        "title": "燃えるごみの日のお知らせ",
        "status": "active",
        "content": {
            "title": "ごみ",
            "messages": ["明日はごみの日です。"],
            "segment": {"all_registered": True},
        },
        "rule": {
            "frequency": "monthly_weekday",
            "weekdays": [2],
            "nth": [2, 4],
            "time": "07:30:00",
            "start": "2026-04-01",
            "holidays": "skip",
        },
        "author": "sato",
        "approver": "suzuki",
    }
    app = app_for("ito")

    async def run_before(pilot) -> None:
        await wait_until(pilot, lambda: app.me is not None)
        await pilot.press("ctrl+y")
        await wait_until(
            pilot,
            lambda: bool(app.screen.query("#series-info")) and app.screen.selected is not None,
        )
        await pilot.pause(0.4)
        app.screen.set_focus(None)
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.req("N4")
async def test_template_saved_and_reopened(app_for, fake, images: Path) -> None:
    """N4: the form (a text and a card) is saved as a template and a new delivery starts from
    it with the same messages."""
    fake.state.rich_routes = True
    app = app_for("ito")
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_until(pilot, lambda: app.me is not None)
        await fill_card(pilot, app, with_image=False)
        app.screen.query_one("#add-template").press()
        await wait_until(
            pilot,
            lambda: (
                isinstance(app.screen, TemplatesModal) and bool(app.screen.query("#template-name"))
            ),
        )
        app.screen.query_one("#template-name", Input).value = "健診のお知らせ"
        app.screen.query_one("#save-template").press()
        await wait_until(pilot, lambda: bool(fake.state.templates))
        saved = fake.state.templates[1]
        assert saved["name"] == "健診のお知らせ" and saved["updated_by"] == "ito"
        assert [m if isinstance(m, str) else m["kind"] for m in saved["content"]["messages"]] == [
            "今年の健康診断のご案内です。",
            "card",
        ]
        await app.screen.reset_form()
        await pilot.pause()
        app.screen.query_one("#add-template").press()
        await wait_until(
            pilot,
            lambda: (
                isinstance(app.screen, TemplatesModal) and bool(app.screen.query("#template-list"))
            ),
        )
        app.screen.query_one("#template-list").focus()
        await pilot.pause()
        await pilot.press("enter")  # the first template is highlighted
        await wait_until(pilot, lambda: bool(app.screen.query(CardItemEditor)))
        assert app.screen.query_one("#title", Input).value == "健診のお知らせ"
        app.screen.query_one("#segment-all").value = True
        await pilot.pause(0.3)
        content = app.screen.content(for_sending=False)
        assert content.messages[1].buttons[0].url == "https://www.city.example.jp/kenshin"


def active_series(fake) -> None:
    fake.state.rich_routes = True
    fake.state.series[1] = {
        "id": 1,
        "title": "燃えるごみの日のお知らせ",
        "status": "active",
        "content": {
            "title": "燃えるごみの日のお知らせ",
            "messages": ["明日はごみの日です。"],
            "segment": {"all_registered": True},
        },
        "rule": {
            "frequency": "weekly",
            "weekdays": [2],
            "time": "07:30:00",
            "start": "2026-04-01",
            "holidays": "skip",
        },
        "author": "sato",
        "approver": "suzuki",
    }


@pytest.mark.req("S8")
async def test_series_changed_from_calendar_and_approved_by_another(app_for, fake) -> None:
    """S8: in 配信予定, e opens the series in 配信作成 with its content and rule; 承認依頼 sends
    the change (the series keeps its approved rule); an approver then sees the change (rule
    in words, the next dates) beside the approved one and approves it with c."""
    active_series(fake)
    app = app_for("ito")
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_until(pilot, lambda: app.me is not None)
        await pilot.press("ctrl+y")
        await wait_until(pilot, lambda: getattr(app.screen, "selected", None) is not None)
        await pilot.press("e")
        await wait_until(
            pilot,
            lambda: (
                bool(app.screen.query("#title"))
                and app.screen.query_one("#title").value == "燃えるごみの日のお知らせ"
            ),
        )
        form = app.screen.query_one(RecurrenceForm)
        assert form.query_one("#weekday-2").value and form.query_one("#rule-time").value == "07:30"
        assert "承認後に反映" in str(app.screen.query_one("#draft-state").render())
        form.query_one("#weekday-2").value = False
        form.query_one("#weekday-3").value = True
        await wait_until(
            pilot, lambda: "毎週 木曜" in str(form.query_one("#rule-summary").render())
        )
        await pilot.pause(0.3)
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        assert "今の内容で配信を続けます" in app.screen.body
        await pilot.pause(0.6)  # the dialog ignores keys pressed within 0.5 s of opening
        await pilot.press("y")
        await wait_until(pilot, lambda: "pending_change" in fake.state.series[1], limit=5)
        assert fake.state.series[1]["rule"]["weekdays"] == [2]  # still the approved rule
        assert fake.state.series[1]["pending_change"]["rule"]["weekdays"] == [3]

    approver = app_for("suzuki")
    async with approver.run_test(size=(120, 36)) as pilot:
        await wait_until(pilot, lambda: approver.me is not None)
        await pilot.press("ctrl+y")
        await wait_until(pilot, lambda: getattr(approver.screen, "selected", None) is not None)
        console = Console(width=100, record=True, file=io.StringIO())
        console.print(series_table(approver.screen.selected))
        info = console.export_text()
        assert "変更後の繰り返し" in info and "毎週 木曜 7:30" in info
        await pilot.press("c")
        await wait_until(pilot, lambda: isinstance(approver.screen, ConfirmModal))
        await pilot.pause(0.6)
        await pilot.press("y")
        await wait_until(pilot, lambda: "pending_change" not in fake.state.series[1], limit=5)
        assert fake.state.series[1]["rule"]["weekdays"] == [3]

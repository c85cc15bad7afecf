"""The dashboard says what each figure counts, so 本日 against 今月 and
友だち against 友だち追加 read without contradiction."""

from __future__ import annotations

import io

from rich.console import Console
from rich.text import Text
from textual.widgets import Static

from kairan_tui.widgets.wrapped import WrappedText
from tests.support.tui_helpers import wait_until


def _text(app, selector: str) -> str:
    """The text of SELECTOR on the current screen ("" while it is not there: the dashboard
    builds its cards after its first load)."""
    found = app.screen.query(selector)
    if not found:
        return ""
    content = found.first(Static).content
    if isinstance(content, str | Text):
        return str(content)
    console = Console(file=io.StringIO(), width=200)
    console.print(content)
    return console.file.getvalue()  # type: ignore[attr-defined]


async def test_each_dashboard_figure_says_what_it_counts(app_for) -> None:
    """友だち excludes blocks and 登録者 is part of it; 本日の配信 is deliveries started
    since midnight and the messages they sent (one per person); the month's count is LINE's,
    as of when it was read, and includes test sends and notices; the week counts new
    friends."""
    app = app_for("ito")
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_until(pilot, lambda: "1 件（210 通）" in _text(app, "#stat-today .stat-value"))
        notes = app.screen.query_one("#stat-notes", WrappedText).text
        assert "友だち＝ブロックした方を除く人数" in notes
        assert "本日の配信＝今日0時からの配信の件数と通数（1人に1通）" in notes
        assert "今月の送信数＝LINEの集計（テスト送信・お知らせを含む）" in notes
        health = _text(app, "#health")
        assert "今月の送信数   1,210 通（10:00 時点）" in health
        assert "新しい友だち" in _text(app, "#week-box .box-title")

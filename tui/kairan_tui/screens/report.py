"""取扱状況報告書 (S15): the auditor chooses a period; the daemon issues the signed report in
their name; the PDF (and its signed Markdown) are saved in the export folder, and the screen
says where."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
from pathlib import Path
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Static

from kairan_tui.client import ApiError
from kairan_tui.labels import JST
from kairan_tui.screens.base import KairanScreen
from kairan_tui.widgets.wrapped import WrappedText


def previous_month(today: dt.date) -> tuple[dt.date, dt.date]:
    last = today.replace(day=1) - dt.timedelta(days=1)
    return last.replace(day=1), last


def fiscal_year(today: dt.date, back: int = 0) -> tuple[dt.date, dt.date]:
    """The Japanese fiscal year (April to March) holding TODAY, or BACK years before it; the
    current one ends today."""
    start_year = (today.year if today.month >= 4 else today.year - 1) - back
    first, last = dt.date(start_year, 4, 1), dt.date(start_year + 1, 3, 31)
    return first, min(last, today)


def parse_period(first: str, last: str) -> tuple[dt.date, dt.date]:
    """Two days as typed (「2026-04-01」 or 「2026/4/1」); raises ValueError with what to fix."""
    days = []
    for text, name in ((first, "開始日"), (last, "終了日")):
        cleaned = text.strip().replace("/", "-")
        try:
            year, month, day = (int(part) for part in cleaned.split("-"))
            days.append(dt.date(year, month, day))
        except ValueError:
            raise ValueError(f"{name}は「2026-04-01」の形で入力してください。") from None
    if days[0] > days[1]:
        raise ValueError("開始日が終了日より後になっています。")
    return days[0], days[1]


def free_name(folder: Path, stem: str, suffix: str) -> Path:
    """FOLDER/STEM.SUFFIX, or STEM-2, STEM-3…: an earlier report is never overwritten."""
    path = folder / f"{stem}{suffix}"
    n = 2
    while path.exists() or path.with_suffix(".md").exists():
        path = folder / f"{stem}-{n}{suffix}"
        n += 1
    return path


def save_report(folder: Path, first: dt.date, last: dt.date, pdf: bytes, markdown: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = free_name(folder, f"handling-report-{first.isoformat()}_{last.isoformat()}", ".pdf")
    path.with_suffix(".md").write_text(markdown, encoding="utf-8")
    path.write_bytes(pdf)
    return path


def japan_today() -> dt.date:
    return dt.datetime.now(JST).date()


class ReportScreen(KairanScreen):
    SCREEN_NAME = "report"
    SCREEN_TITLE = "取扱状況報告書"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("ctrl+s", "issue", "報告書を作成")]

    def today(self) -> dt.date:
        """The day the period presets count from (tests fix it)."""
        return japan_today()

    def compose_body(self) -> ComposeResult:
        with Vertical(id="report-box", classes="box"):
            yield Static("取扱状況報告書の作成", classes="box-title")
            yield WrappedText(
                "期間を選んで「報告書を作成」を押すと、その期間の個人情報の取扱状況（登録者数、"
                "配信、削除、研修、事故の記録など）をまとめた報告書を、作成者としてあなたの名前を"
                "記載し、署名付きのPDFで作成します。",
                classes="hint",
            )
            with Horizontal(id="report-presets"):
                yield Button("前月", id="preset-month")
                yield Button("今年度", id="preset-fy")
                yield Button("前年度", id="preset-last-fy")
            with Horizontal(id="report-period"):
                yield Static("開始日", classes="field-label")
                yield Input(id="report-from", placeholder="2026-04-01")
                yield Static("終了日", classes="field-label")
                yield Input(id="report-to", placeholder="2027-03-31")
            with Horizontal(id="report-actions"):
                yield Button("報告書を作成", id="report-issue", variant="primary")
            yield WrappedText(self._folder_text(), id="report-folder", classes="hint")
            yield WrappedText("", id="report-result")

    def _folder_text(self) -> str:
        return f"保存先：{self.kairan.export_dir}"

    def on_mount(self) -> None:
        self._set_period(*previous_month(self.today()))

    def _set_period(self, first: dt.date, last: dt.date) -> None:
        self.query_one("#report-from", Input).value = first.isoformat()
        self.query_one("#report-to", Input).value = last.isoformat()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        today = self.today()
        if event.button.id == "preset-month":
            self._set_period(*previous_month(today))
        elif event.button.id == "preset-fy":
            self._set_period(*fiscal_year(today))
        elif event.button.id == "preset-last-fy":
            self._set_period(*fiscal_year(today, back=1))
        elif event.button.id == "report-issue":
            self.action_issue()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_issue()

    def action_issue(self) -> None:
        try:
            first, last = parse_period(
                self.query_one("#report-from", Input).value,
                self.query_one("#report-to", Input).value,
            )
        except ValueError as problem:
            self.notify(str(problem), title="入力内容を確認してください", severity="warning")
            return
        self.issue(first, last)

    @work(exit_on_error=False, exclusive=True, group="report")
    async def issue(self, first: dt.date, last: dt.date) -> None:
        result = self.query_one("#report-result", WrappedText)
        result.update("作成しています…")
        try:
            report = await self.api.handling_report(first.isoformat(), last.isoformat())
        except ApiError as exc:
            result.update("")
            self.report(exc, "報告書を作成")
            return
        folder = Path(self.kairan.export_dir)
        try:
            path = await asyncio.to_thread(
                save_report,
                folder,
                report.period_from,
                report.period_to,
                base64.b64decode(report.pdf_base64),
                report.markdown,
            )
        except OSError as exc:
            result.update("")
            self.notify(
                f"{folder} に保存できませんでした（{exc.strerror}）。書き出し先のフォルダーを"
                "確認してください。",
                title="報告書を保存できませんでした",
                severity="error",
                timeout=10,
            )
            return
        result.update(
            f"{report.period_from:%Y年%-m月%-d日}〜{report.period_to:%Y年%-m月%-d日}の報告書を"
            f"保存しました（作成者：{report.author}）。\nPDF：{path}\n"
            f"署名付きMarkdown：{path.with_suffix('.md')}"
        )
        self.notify("取扱状況報告書を保存しました。", title="取扱状況報告書")

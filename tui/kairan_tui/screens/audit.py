"""監査ログ: the tamper-evident operation log, filtered, with 「検証」 of the hash chain."""

from __future__ import annotations

import datetime as dt
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, DataTable, Input, Static

from kairan_tui.client import ApiError
from kairan_tui.labels import JST, format_compact
from kairan_tui.screens.base import KairanScreen
from kairand.api import schema

OUTCOME_LABELS = schema.AUDIT_OUTCOME_LABELS


def parse_day(text: str, *, end: bool = False) -> dt.datetime | None:
    text = text.strip().replace("/", "-")
    if not text:
        return None
    day = dt.date.fromisoformat(text)
    moment = dt.datetime.combine(day, dt.time.max if end else dt.time.min)
    return moment.replace(tzinfo=JST)


class AuditScreen(KairanScreen):
    SCREEN_NAME = "audit"
    SCREEN_TITLE = "監査ログ"
    # 絞り込み: Enter in a filter field or the button (Ctrl+R means 承認依頼 on 配信作成).
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+g", "verify", "検証"),
        Binding("ctrl+o", "older", "さらに古いログ"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.next_before_seq: int | None = None

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="audit-filters"):
            yield Input(placeholder="職員名", id="filter-actor", tooltip="ユーザー名（例 sato）")
            yield Input(
                placeholder="操作名",
                id="filter-action",
                tooltip="操作の名前の一部（例：承認、配信中止、職員）",
            )
            yield Input(placeholder="開始日", id="filter-since", tooltip="例 2026-11-01")
            yield Input(placeholder="終了日", id="filter-until", tooltip="例 2026-11-30")
            yield Button("絞り込み", id="search")
            yield Button("検証", id="verify", variant="primary")
        yield Static("", id="verify-result")
        with Vertical(classes="box", id="audit-box"):
            yield DataTable(id="audit-table", cursor_type="row", zebra_stripes=True)
            yield Static("", id="audit-empty", classes="hint")

    def on_mount(self) -> None:
        self.query_one("#audit-table", DataTable).add_columns(
            "記録番号", "日時", "職員", "操作", "対象", "結果"
        )

    def refresh_data(self) -> None:
        self.load(append=False)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "verify":
            self.action_verify()
        else:
            self.action_search()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_search()

    def action_search(self) -> None:
        self.load(append=False)

    def action_older(self) -> None:
        if self.next_before_seq is None:
            self.notify("これより古いログはありません。")
            return
        self.load(append=True)

    def audit_queries(self, before_seq: int | None) -> list[schema.AuditQuery] | None:
        """The filter as API queries: a Japanese operation name (「承認」) stands for every
        action code whose name contains it (one query each, merged); None when the filter
        cannot be read; [] when the words match no operation."""
        base = self.audit_query(before_seq)
        if base is None:
            return None
        words = self.query_one("#filter-action", Input).value.strip()
        if not words:
            return [base]
        codes = schema.audit_actions_matching(words)
        return [base.model_copy(update={"action": code}) for code in codes]

    def audit_query(self, before_seq: int | None) -> schema.AuditQuery | None:
        try:
            since = parse_day(self.query_one("#filter-since", Input).value)
            until = parse_day(self.query_one("#filter-until", Input).value, end=True)
        except ValueError:
            self.notify("日付は「2026-11-01」の形で入力してください。", severity="warning")
            return None
        return schema.AuditQuery(
            actor=self.query_one("#filter-actor", Input).value.strip() or None,
            action=None,
            since=since,
            until=until,
            before_seq=before_seq,
            limit=200,
        )

    @work(exit_on_error=False, exclusive=True, group="audit")
    async def load(self, append: bool) -> None:
        queries = self.audit_queries(self.next_before_seq if append else None)
        if queries is None:
            return
        entries: dict[int, schema.AuditEntryOut] = {}
        more = False
        try:
            for query in queries:
                page = await self.api.audit(query)
                entries.update((entry.seq, entry) for entry in page.items)
                more = more or page.next_before_seq is not None
        except ApiError as exc:
            self.report(exc, "監査ログを表示")
            return
        ordered = sorted(entries.values(), key=lambda e: -e.seq)[:200]
        table = self.query_one("#audit-table", DataTable)
        if not append:
            table.clear()
        for entry in ordered:
            table.add_row(
                str(entry.seq),
                format_compact(entry.at, short=self.has_class("-narrow")),
                entry.actor,
                schema.audit_action_label(entry.action),
                schema.audit_target_label(entry.action, entry.target),
                OUTCOME_LABELS.get(entry.outcome, entry.outcome),
            )
        more = more or len(entries) > len(ordered)
        self.next_before_seq = ordered[-1].seq if ordered and more else None
        self.query_one("#audit-empty", Static).update(
            "該当する記録はありません。条件を変えてお試しください。"
            if not append and not ordered
            else ""
        )

    def action_verify(self) -> None:
        self.verify()

    @work(exit_on_error=False, exclusive=True, group="audit-verify")
    async def verify(self) -> None:
        result_box = self.query_one("#verify-result", Static)
        result_box.update("検証しています…")
        try:
            result = await self.api.verify_audit()
        except ApiError as exc:
            result_box.update("")
            self.report(exc, "監査ログの検証")
            return
        if result.ok:
            result_box.update(
                f"✔ 検証の結果、改ざんは見つかりませんでした（{result.entries:,} 件、"
                f"署名付きチェックポイント {result.checkpoints:,} 件）。"
            )
            result_box.set_classes("ok")
        else:
            result_box.update(
                f"✘ 記録番号 {result.first_broken_seq} 以降で記録の食い違いが見つかりました"
                f"（{result.reason}）。直ちにシステム管理者と情報セキュリティ担当に報告してください。"
            )
            result_box.set_classes("broken")

"""承認待ち: deliveries waiting for approval, with preview and the audience count as of now."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, Static

from kairan_tui.client import ApiError
from kairan_tui.labels import channel_split, format_compact, format_datetime
from kairan_tui.modals.confirm import ConfirmModal
from kairan_tui.modals.reject import RejectModal
from kairan_tui.screens.base import KairanScreen
from kairan_tui.widgets.line_preview import LinePreview
from kairan_tui.widgets.segment_builder import describe_segment
from kairand.api import schema
from kairand.api.schema import CONFIDENTIALITY_LABELS


def content_table(detail: schema.DeliveryDetail, survey: schema.SurveyDefinition | None) -> Table:
    content = detail.content
    table = Table.grid(padding=(0, 1))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    table.add_row("件名", content.title)
    table.add_row("作成者", detail.author)
    table.add_row("機密性区分", CONFIDENTIALITY_LABELS.get(content.confidentiality, "?"))
    table.add_row("配信対象", describe_segment(content.segment, survey))
    when = (
        "承認後すぐに配信"
        if content.scheduled_at is None
        else f"予約配信 {format_datetime(content.scheduled_at, with_year=True)}"
    )
    table.add_row("配信日時", when)
    table.add_row(
        "通知", "通知音なしで配信" if content.notification_disabled else "通知音ありで配信"
    )
    if detail.urgent:
        table.add_row("緊急配信", "はい")
    if detail.links:  # the approver reads every address in full
        table.add_row("リンク先", Text("\n".join(detail.links), overflow="fold"))
    return table


class ApprovalsScreen(KairanScreen):
    SCREEN_NAME = "approvals"
    SCREEN_TITLE = "承認待ち"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "approve", "承認"),
        Binding("d", "reject", "差し戻し"),
        Binding("t", "test_send", "テスト送信"),
        Binding("r", "reload", "一覧を更新"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.survey: schema.SurveyDefinition | None = None
        self.selected: schema.DeliveryDetail | None = None
        self.audience: int | None = None

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="approvals-main"):
            with Vertical(id="approvals-list", classes="box"):
                yield Static("承認を待っている配信", classes="box-title")
                yield DataTable(id="pending", cursor_type="row", zebra_stripes=True)
                yield Static("", id="pending-empty", classes="hint")
            with Vertical(id="approvals-detail"):
                with VerticalScroll(classes="box", id="approval-info"):
                    yield Static("", id="approval-audience", classes="audience")
                    yield Static("配信を選ぶと内容が表示されます。", id="approval-content")
                yield LinePreview(id="approval-preview")

    def on_mount(self) -> None:
        table = self.query_one("#pending", DataTable)
        table.add_columns("配信番号", "件名", "作成者", "依頼日時")

    def action_reload(self) -> None:
        self.refresh_data()

    def refresh_data(self) -> None:
        self.load()

    @work(exit_on_error=False, exclusive=True, group="approvals")
    async def load(self) -> None:
        try:
            if self.survey is None:
                self.survey = (await self.api.survey()).definition
            page = await self.api.deliveries(status="pending_approval", limit=200)
        except ApiError as exc:
            self.report(exc, "承認待ちの一覧を表示")
            return
        table = self.query_one("#pending", DataTable)
        keep = self.selected.id if self.selected else None
        table.clear()
        for item in page.items:
            table.add_row(
                str(item.id),
                item.title,
                item.author,
                format_compact(item.created_at) if item.created_at else "—",
                key=str(item.id),
            )
        self.query_one("#pending-empty", Static).update(
            "" if page.items else "承認を待っている配信はありません。"
        )
        if not page.items:
            self._clear_detail()
            return
        ids = [item.id for item in page.items]
        row = ids.index(keep) if keep in ids else 0
        table.move_cursor(row=row)
        self.show_detail(ids[row])

    def _clear_detail(self) -> None:
        self.selected = None
        self.audience = None
        self.query_one("#approval-audience", Static).update("")
        self.query_one("#approval-content", Static).update("配信を選ぶと内容が表示されます。")
        self.query_one(LinePreview).show([])

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key is not None and event.row_key.value is not None:
            delivery_id = int(event.row_key.value)
            if self.selected is None or self.selected.id != delivery_id:
                self.show_detail(delivery_id)

    @work(exit_on_error=False, exclusive=True, group="approval-detail")
    async def show_detail(self, delivery_id: int) -> None:
        try:
            detail = await self.api.delivery(delivery_id)
            count = await self.api.audience_count(detail.content.segment)
        except ApiError as exc:
            self.report(exc, "配信の内容を表示")
            return
        self.selected = detail
        self.audience = count.count
        nobody = "（該当する登録者がいません。差し戻してください）" if count.count == 0 else ""
        self.query_one("#approval-audience", Static).update(
            f"現在の配信対象人数：{count.count:,} 人{nobody}"
            + (f"\n（{channel_split(count.line, count.mail)}）" if count.mail else "")
        )
        self.query_one("#approval-content", Static).update(content_table(detail, self.survey))
        self.query_one(LinePreview).show(
            list(detail.content.messages),
            notification_disabled=detail.content.notification_disabled,
        )

    def _own_delivery(self, detail: schema.DeliveryDetail) -> bool:
        """True when four eyes forbids this caller approving: their own delivery, unless the
        threshold relaxes it for the current audience (the API decides in the end; the
        detail's can_self_approve is only known once recipients are frozen)."""
        me = self.kairan.me
        if me is None or detail.author != me.username or detail.can_self_approve:
            return False
        threshold = me.four_eyes.self_approval_threshold
        relaxed = me.four_eyes.relaxed and self.audience is not None and self.audience < threshold
        return not relaxed

    def action_approve(self) -> None:
        if self.selected is None:
            self.notify("承認する配信を一覧から選んでください。", severity="warning")
            return
        if self._own_delivery(self.selected):
            self.notify(
                "ご自身が作成した配信は承認できません（二人の確認が必要です）。"
                "ほかの承認者に承認を依頼してください。",
                title="承認できません",
                severity="warning",
            )
            return
        self.approve(self.selected)

    @work(exit_on_error=False, exclusive=True, group="approval-action")
    async def approve(self, detail: schema.DeliveryDetail) -> None:
        try:
            count = (await self.api.audience_count(detail.content.segment)).count
        except ApiError as exc:
            self.report(exc, "配信対象人数を確認")
            return
        if count == 0:
            self.notify(
                "該当する登録者がいません。この配信は誰にも届かないため承認できません。"
                "条件を見直すよう、差し戻し（d）で作成者に伝えてください。",
                title="承認できません",
                severity="error",
                timeout=15,
            )
            return
        when = (
            "承認するとすぐに配信が始まります。"
            if detail.content.scheduled_at is None
            else f"承認すると {format_datetime(detail.content.scheduled_at)} に配信されます。"
        )
        confirmed = await self.app.push_screen_wait(
            ConfirmModal(
                f"「{detail.content.title}」を承認して配信します",
                f"{when}配信した内容は取り消せません。",
                confirm_label="承認して配信する",
                audience=count,
            )
        )
        if not confirmed:
            self.notify("承認を取りやめました。", timeout=4)
            return
        try:
            await self.api.approve(detail.id)
        except ApiError as exc:
            if exc.code != "quota_exceeded":
                self.report(exc, "承認")
                return
            # LINE's monthly allowance is smaller than the audience: a second, explicit decision.
            over = await self.app.push_screen_wait(
                ConfirmModal(
                    "今月の送信可能数を超えます",
                    f"{exc.message}\n上限を超えた分はLINEの追加料金の対象になる場合があります。",
                    confirm_label="上限を超えて承認する",
                    audience=count,
                )
            )
            if not over:
                self.notify("承認を取りやめました。", timeout=4)
                return
            try:
                await self.api.approve(detail.id, confirm_over_quota=True)
            except ApiError as again:
                self.report(again, "承認")
                return
        self.notify(
            f"「{detail.content.title}」を承認しました。配信の進み具合は配信履歴（F5）で確認できます。",
            title="承認しました",
        )
        self.selected = None
        self.load()

    def action_reject(self) -> None:
        if self.selected is None:
            self.notify("差し戻す配信を一覧から選んでください。", severity="warning")
            return
        self.reject(self.selected)

    @work(exit_on_error=False, exclusive=True, group="approval-action")
    async def reject(self, detail: schema.DeliveryDetail) -> None:
        comment = await self.app.push_screen_wait(RejectModal(detail.content.title))
        if comment is None:
            return
        try:
            await self.api.reject(detail.id, comment)
        except ApiError as exc:
            self.report(exc, "差し戻し")
            return
        self.notify(f"「{detail.content.title}」を作成者に差し戻しました。", title="差し戻しました")
        self.selected = None
        self.load()

    def action_test_send(self) -> None:
        if self.selected is not None:
            self.test_send(self.selected.id)

    @work(exit_on_error=False, exclusive=True, group="approval-action")
    async def test_send(self, delivery_id: int) -> None:
        try:
            result = await self.api.test_send(delivery_id)
        except ApiError as exc:
            self.report(exc, "テスト送信")
            return
        if result.sent == 0:
            self.notify(
                "テスト送信先が登録されていません。配信作成画面の「テスト送信先の登録」から"
                "登録してください。",
                severity="warning",
            )
        else:
            training = self.kairan.me is not None and self.kairan.me.training_mode
            where = "研修用スマートフォン（make phone の画面）" if training else "LINE"
            self.notify(f"テスト送信しました（{result.sent} 件）。{where}で確認してください。")

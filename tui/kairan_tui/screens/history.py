"""配信履歴: every delivery, its result counts, and a live progress bar while it is sent."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, ProgressBar, Static

from kairan_tui.client import ApiError, ConnectionLost
from kairan_tui.labels import (
    CANCELLABLE,
    FINISHED,
    channel_split,
    format_datetime,
    status_label,
)
from kairan_tui.modals.confirm import ConfirmModal
from kairan_tui.screens.approvals import content_table
from kairan_tui.screens.base import KairanScreen
from kairan_tui.widgets.line_preview import LinePreview
from kairand.api import schema

if TYPE_CHECKING:
    from kairan_tui.app import DaemonEvent

POLL_SECONDS = 2.0
RESUMABLE = frozenset({"needs_attention", "quota_exhausted"})


PAGE_SIZE = 200


def counts_text(item: schema.DeliverySummary) -> str:
    if item.recipient_count is None:
        return "—"
    return f"{item.sent_count:,}/{item.recipient_count:,}"


def history_status(item: schema.DeliverySummary) -> str:
    """A draft sent back by an approver reads 差し戻し, not 下書き."""
    if item.sent_back:
        return "差し戻し"
    return status_label(item.status)


class HistoryScreen(KairanScreen):
    SCREEN_NAME = "history"
    SCREEN_TITLE = "配信履歴"
    # Only the actions valid for the selected delivery's status are offered (check_action).
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "cancel_delivery", "配信中止"),
        Binding("e", "edit_draft", "下書きを編集"),
        Binding("s", "resume_delivery", "配信を再開"),
        Binding("r", "reload", "一覧を更新"),
        Binding("n", "page(1)", "次の200件"),
        Binding("p", "page(-1)", "前の200件"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.survey: schema.SurveyDefinition | None = None
        self.selected: schema.DeliveryDetail | None = None
        self.watching: int | None = None  # the unfinished delivery whose end staff are told
        self._items: dict[int, schema.DeliverySummary] = {}
        self.page_offset = 0
        self.next_offset: int | None = None

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="history-main"):
            with Vertical(id="history-list", classes="box"):
                yield Static("配信の一覧（新しい順）", classes="box-title", id="history-title")
                yield DataTable(id="deliveries", cursor_type="row", zebra_stripes=True)
            with VerticalScroll(id="history-detail", classes="box"):
                yield Static("", id="history-status", classes="audience")
                yield ProgressBar(total=100, show_eta=False, id="progress")
                yield Static("", id="history-counts")
                yield Static("配信を選ぶと詳細が表示されます。", id="history-content")
                yield LinePreview(id="history-preview")

    def on_mount(self) -> None:
        table = self.query_one("#deliveries", DataTable)
        table.add_columns("配信番号", "件名", "状態", "送信数")
        self.query_one("#progress").display = False

    def action_reload(self) -> None:
        self.refresh_data()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Offer only what the selected delivery's status allows (hidden otherwise)."""
        detail = self.selected
        status = detail.status if detail is not None else None
        if action == "cancel_delivery":
            return status in CANCELLABLE
        if action == "edit_draft":
            return status == "draft" and "compose" in self.kairan.visible_screens
        if action == "resume_delivery":
            me = self.kairan.me
            return status in RESUMABLE and me is not None and "deliveries.resume" in me.allowed
        if action == "page":
            step = parameters[0] if parameters else 0
            return self.next_offset is not None if step == 1 else self.page_offset > 0
        return True

    def action_page(self, step: int) -> None:
        if step > 0 and self.next_offset is not None:
            self.page_offset = self.next_offset
        elif step < 0 and self.page_offset > 0:
            self.page_offset = max(0, self.page_offset - PAGE_SIZE)
        else:
            return
        self.selected = None
        self.load()

    def refresh_data(self) -> None:
        self.load()

    @work(exit_on_error=False, exclusive=True, group="history")
    async def load(self) -> None:
        try:
            if self.survey is None:
                self.survey = (await self.api.survey()).definition
            page = await self.api.deliveries(limit=PAGE_SIZE, offset=self.page_offset)
        except ApiError as exc:
            self.report(exc, "配信履歴を表示")
            return
        table = self.query_one("#deliveries", DataTable)
        keep = self.selected.id if self.selected else None
        table.clear()
        self._items = {item.id: item for item in page.items}
        self.next_offset = page.next_offset
        first, last = self.page_offset + 1, self.page_offset + len(page.items)
        more = "（n：さらに前の配信）" if page.next_offset is not None else ""
        self.query_one("#history-title", Static).update(
            f"配信の一覧（新しい順・{first:,}〜{last:,}件目）{more}"
            if page.items
            else "配信の一覧（新しい順）"
        )
        self.refresh_bindings()
        for item in page.items:
            table.add_row(
                str(item.id),
                item.title,
                history_status(item),
                counts_text(item),
                key=str(item.id),
            )
        if not page.items:
            self.query_one("#history-content", Static).update("まだ配信はありません。")
            return
        ids = [item.id for item in page.items]
        row = ids.index(keep) if keep in ids else 0
        table.move_cursor(row=row)
        self.show_detail(ids[row])

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key is not None and event.row_key.value is not None:
            delivery_id = int(event.row_key.value)
            if self.selected is None or self.selected.id != delivery_id:
                self.show_detail(delivery_id)

    @work(exit_on_error=False, exclusive=True, group="history-detail")
    async def show_detail(self, delivery_id: int) -> None:
        """Show one delivery; while it is under way, keep it live until it finishes."""
        try:
            detail = await self.api.delivery(delivery_id)
        except ApiError as exc:
            self.report(exc, "配信の詳細を表示")
            return
        self.selected = detail
        self.refresh_bindings()
        self.render_detail(detail)
        self.query_one(LinePreview).show(
            list(detail.content.messages),
            notification_disabled=detail.content.notification_disabled,
        )
        if detail.status in FINISHED:
            # A list refresh may restart this worker just as the watched delivery finishes.
            self.announce_finished(detail)
            return
        if detail.status in ("draft", "pending_approval"):
            return
        self.watching = detail.id
        # Progress arrives through the app's event stream (on_daemon_event); polling is the
        # safety net that also catches a status change the stream missed.
        while True:
            await asyncio.sleep(POLL_SECONDS)
            try:
                detail = await self.api.delivery(delivery_id)
            except ConnectionLost:
                self.kairan.connection_lost()
                continue
            except ApiError as exc:
                self.report(exc, "配信の進み具合を表示")
                return
            self.selected = detail
            self.refresh_bindings()
            self.render_detail(detail)
            if detail.status in FINISHED:
                self.announce_finished(detail)
                self.load()
                return

    def announce_finished(self, detail: schema.DeliveryDetail) -> None:
        """Tell staff once that the delivery they were watching has finished."""
        if self.watching != detail.id:
            return
        self.watching = None
        self.notify(
            f"「{detail.content.title}」は{status_label(detail.status)}になりました"
            f"（送信 {detail.sent_count:,} 人、失敗 {detail.failed_count:,} 人）。",
            title="配信が終わりました",
        )

    def on_daemon_event(self, event: DaemonEvent) -> None:
        data = event.data
        selected = self.selected
        if event.name != "delivery" or not isinstance(data, dict) or selected is None:
            return
        progress = schema.DeliveryEvent.model_validate(data)
        if progress.id == selected.id and selected.status not in FINISHED:
            self.render_progress(
                progress.status,
                progress.recipient_count,
                progress.sent_count,
                progress.failed_count,
                progress.progress,
            )

    def render_progress(
        self,
        status: str,
        recipients: int | None,
        sent: int,
        failed: int,
        progress: float,
    ) -> None:
        label = status_label(status)
        selected = self.selected
        if status == "draft" and selected is not None and selected.reject_comment:
            label = "差し戻し（作成者が修正して、あらためて承認依頼します）"
        self.query_one("#history-status", Static).update(f"状態：{label}")
        bar = self.query_one("#progress", ProgressBar)
        bar.display = status not in ("draft", "pending_approval", "cancelled")
        bar.update(total=100, progress=round(progress * 100, 1))
        target = "—" if recipients is None else f"{recipients:,} 人"
        counts = f"配信対象 {target}　送信済み {sent:,} 人　失敗 {failed:,} 人"
        self.query_one("#history-counts", Static).update(counts)

    def render_detail(self, detail: schema.DeliveryDetail) -> None:
        self.render_progress(
            detail.status,
            detail.recipient_count,
            detail.sent_count,
            detail.failed_count,
            detail.progress,
        )
        table = content_table(detail, self.survey)
        mail = detail.mail
        if mail is not None and detail.recipient_count is not None:
            # counts per channel, never an address.
            table.add_row(
                "配信経路", channel_split(detail.recipient_count - mail.recipients, mail.recipients)
            )
            waiting = mail.recipients - mail.sent - mail.failed - mail.unconfirmed
            state = f"送信済み {mail.sent:,} 人・失敗 {mail.failed:,} 人・送信待ち {waiting:,} 人"
            if mail.unconfirmed:
                state += f"・要確認 {mail.unconfirmed:,} 人（再送しません）"
            table.add_row("メール", state)
        if detail.approver:
            table.add_row("承認者", detail.approver)
        for label, value in (
            ("承認依頼", detail.submitted_at),
            ("承認", detail.approved_at),
            ("配信開始", detail.started_at),
            ("配信終了", detail.finished_at),
        ):
            if value is not None:
                table.add_row(label, format_datetime(value, with_year=True))
        if detail.reject_comment:
            table.add_row("差し戻し理由", detail.reject_comment)
        if detail.status_reason:
            table.add_row("状況", detail.status_reason)
        self.query_one("#history-content", Static).update(table)
        summary = self._items.get(detail.id)
        if summary is not None and (
            summary.status != detail.status or summary.sent_count != detail.sent_count
        ):
            table_widget = self.query_one("#deliveries", DataTable)
            key = str(detail.id)
            with contextlib.suppress(Exception):
                table_widget.update_cell(
                    key, table_widget.ordered_columns[2].key, history_status(detail)
                )
                table_widget.update_cell(
                    key, table_widget.ordered_columns[3].key, counts_text(detail)
                )

    def action_cancel_delivery(self) -> None:
        detail = self.selected
        if detail is None:
            self.notify("中止する配信を一覧から選んでください。", severity="warning")
            return
        if detail.status not in CANCELLABLE:
            self.notify(
                f"この配信は「{status_label(detail.status)}」のため中止できません。",
                severity="warning",
            )
            return
        self.cancel_delivery(detail)

    @work(exit_on_error=False, exclusive=True, group="history-action")
    async def cancel_delivery(self, detail: schema.DeliveryDetail) -> None:
        remaining = None
        if detail.recipient_count is not None:
            remaining = max(0, detail.recipient_count - detail.sent_count - detail.failed_count)
        else:
            with contextlib.suppress(ApiError):
                remaining = (await self.api.audience_count(detail.content.segment)).count
        confirmed = await self.app.push_screen_wait(
            ConfirmModal(
                f"「{detail.content.title}」の配信を中止します",
                "まだ届いていない登録者には送信されなくなります。"
                "すでに届いたメッセージは取り消せません。",
                confirm_label="配信中止する",
                audience=remaining,
            )
        )
        if not confirmed:
            return
        try:
            await self.api.cancel(detail.id)
        except ApiError as exc:
            self.report(exc, "配信中止")
            return
        self.notify(f"「{detail.content.title}」の配信を中止しました。", title="配信中止")
        self.selected = None
        self.load()

    def action_resume_delivery(self) -> None:
        detail = self.selected
        me = self.kairan.me
        if me is None or "deliveries.resume" not in me.allowed:
            self.notify("配信の再開は承認者が行います。", severity="warning")
            return
        if detail is None or detail.status not in RESUMABLE:
            self.notify(
                "再開できるのは「要確認」または「送信可能数超過」で止まった配信だけです。",
                severity="warning",
            )
            return
        self.resume_delivery(detail)

    @work(exit_on_error=False, exclusive=True, group="history-action")
    async def resume_delivery(self, detail: schema.DeliveryDetail) -> None:
        remaining = None
        if detail.recipient_count is not None:
            remaining = max(0, detail.recipient_count - detail.sent_count - detail.failed_count)
        reason = f"止まった理由：{detail.status_reason}\n" if detail.status_reason else ""
        confirmed = await self.app.push_screen_wait(
            ConfirmModal(
                f"「{detail.content.title}」の配信を再開します",
                f"{reason}まだ届いていない登録者への送信を再開します。"
                "同じ登録者に二重に届くことはありません。",
                confirm_label="再開する",
                audience=remaining,
            )
        )
        if not confirmed:
            return
        over = False
        while True:
            try:
                await self.api.resume(detail.id, confirm_over_quota=over)
            except ApiError as exc:
                if exc.code == "quota_exceeded" and not over:
                    over = await self.app.push_screen_wait(
                        ConfirmModal(
                            "今月の送信可能数を超えます",
                            exc.message,
                            confirm_label="上限を超えて再開する",
                            audience=remaining,
                        )
                    )
                    if over:
                        continue
                    return
                self.report(exc, "配信の再開")
                return
            break
        self.notify(f"「{detail.content.title}」の配信を再開しました。", title="再開しました")
        self.selected = None
        self.load()

    def action_edit_draft(self) -> None:
        detail = self.selected
        if detail is None or detail.status != "draft":
            self.notify("編集できるのは下書きの配信だけです。", severity="warning")
            return
        if "compose" not in self.kairan.visible_screens:
            self.notify("下書きを編集する権限がありません。", severity="warning")
            return
        self.kairan.open_draft(detail)

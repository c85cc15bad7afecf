"""配信作成, the rich-message parts kept out of compose.py: the message-kind buttons, 定型文 and
submitting a recurring delivery (定期配信) as a series. Mixed into ComposeScreen."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual import work
from textual.containers import Vertical
from textual.widgets import Checkbox, Input, Select, Static

from kairan_tui.client import ApiError
from kairan_tui.labels import MESSAGES_MAX
from kairan_tui.modals.confirm import ConfirmModal
from kairan_tui.modals.templates import TemplatesModal
from kairan_tui.widgets.recurrence_form import RecurrenceForm
from kairan_tui.widgets.rich_items import EDITORS, ItemProblem, RichAddBar, RichItemEditor
from kairan_tui.widgets.segment_builder import SegmentBuilder, SegmentChoice
from kairand.api import schema

if TYPE_CHECKING:
    from kairan_tui.screens.compose import ComposeScreen


class FormProblem(Exception):
    """The form cannot be turned into a delivery yet; the message says what to fix."""


class RichComposeMixin:
    """Handlers and workers of ComposeScreen for images, stickers, cards, templates and
    recurring deliveries (`self` is the ComposeScreen)."""

    def on_rich_item_editor_changed(self, _: RichItemEditor.Changed) -> None:
        screen = cast("ComposeScreen", self)
        screen._update_preview()

    def on_rich_add_bar_add(self, event: RichAddBar.Add) -> None:
        screen = cast("ComposeScreen", self)
        if event.kind == "template":
            screen.templates()
            return
        if screen.message_count >= MESSAGES_MAX:
            screen.notify(f"メッセージは{MESSAGES_MAX}件までです。", severity="warning")
            return
        screen.message_count += 1
        n = screen.message_count
        screen.query_one("#messages", Vertical).mount(EDITORS[event.kind](n, id=f"message-{n}"))

    @work(exit_on_error=False, exclusive=True, group="compose-io")
    async def templates(self) -> None:
        """定型文: open one into the form, or save the form as one."""
        screen = cast("ComposeScreen", self)
        try:
            found = await screen.api.templates()
        except ApiError as exc:
            screen.report(exc, "定型文を読み込み")
            return
        choice = await screen.app.push_screen_wait(TemplatesModal(found.items, can_save=True))
        if choice is None:
            return
        if choice.use is not None:
            content = choice.use.content
            screen.query_one("#title", Input).value = content.title
            await screen._set_messages(list(content.messages))
            screen.query_one("#silent", Checkbox).value = content.notification_disabled
            screen.notify(f"定型文「{choice.use.name}」から作成します。", title="定型文")
            return
        try:
            current = screen.content(for_sending=False)
            body = schema.TemplateIn(
                name=choice.save_as or "",
                content=schema.TemplateContent(
                    title=current.title,
                    messages=list(current.messages),
                    notification_disabled=current.notification_disabled,
                ),
            )
            await screen.api.save_template(body)
        except FormProblem as problem:
            screen.notify(str(problem), title="入力内容を確認してください", severity="warning")
            return
        except ApiError as exc:
            screen.report(exc, "定型文を保存")
            return
        screen.notify(f"定型文「{choice.save_as}」を保存しました。", title="定型文")

    editing_series: schema.SeriesOut | None = None
    """The series being changed (opened from 配信予定), or None for a new one."""

    async def load_series(self, item: schema.SeriesOut) -> None:
        """Open a series (from 配信予定) to change it: its content and rule in the form."""
        screen = cast("ComposeScreen", self)
        await screen.reset_form()
        content = item.pending_change.content if item.pending_change else item.content
        rule = item.pending_change.rule if item.pending_change else item.rule
        screen.query_one("#title", Input).value = content.title
        await screen._set_messages(list(content.messages))
        screen.query_one("#silent", Checkbox).value = content.notification_disabled
        screen.query_one("#schedule", Select).value = "repeat"
        screen.query_one(RecurrenceForm).set_rule(rule)
        screen.segment_choice = SegmentChoice(content.segment, "", "")
        builders = screen.query(SegmentBuilder)
        if builders:
            builders.first().set_segment(content.segment)
        else:
            screen._pending_segment = content.segment
        self.editing_series = item
        note = (
            "承認後に反映されます（それまでは今の内容で配信します）"
            if item.status in ("active", "paused")
            else "承認依頼前の内容を直します"
        )
        screen.query_one("#draft-state", Static).update(f"定期配信 {item.id} を変更中：{note}")

    async def submit_series(self, content: schema.DeliveryContent) -> None:
        screen = cast("ComposeScreen", self)
        try:
            rule = screen.query_one(RecurrenceForm).rule()
        except ItemProblem as problem:
            screen.notify(str(problem), title="入力内容を確認してください", severity="warning")
            return
        if self.editing_series is not None:
            await self._submit_series_change(content, rule, self.editing_series)
            return
        confirmed = await screen.app.push_screen_wait(
            ConfirmModal(
                f"「{content.title}」を定期配信として承認依頼します",
                f"{schema.describe(rule)}。承認されると、毎回その時刻の配信対象に送ります。",
                confirm_label="承認依頼する",
                danger=False,
            )
        )
        if not confirmed:
            return
        try:
            created = await screen.api.create_series(schema.SeriesIn(content=content, rule=rule))
            await screen.api.series_action(created.id, "submit")
        except ApiError as exc:
            screen.report(exc, "定期配信の承認依頼")
            return
        screen.notify(f"定期配信の承認を依頼しました（番号 {created.id}）。", title="承認依頼")
        await screen.reset_form()

    async def _submit_series_change(
        self,
        content: schema.DeliveryContent,
        rule: schema.RecurrenceRule,
        item: schema.SeriesOut,
    ) -> None:
        screen = cast("ComposeScreen", self)
        approved = item.status in ("active", "paused")
        confirmed = await screen.app.push_screen_wait(
            ConfirmModal(
                f"定期配信 {item.id}「{content.title}」の変更を承認依頼します",
                f"{schema.describe(rule)}。"
                + (
                    "ほかの承認者が承認するまでは、今の内容で配信を続けます。"
                    if approved
                    else "変更したあなたは、この定期配信を承認できなくなります。"
                ),
                confirm_label="承認依頼する",
                danger=False,
            )
        )
        if not confirmed:
            return
        try:
            updated = await screen.api.update_series(
                item.id, schema.SeriesIn(content=content, rule=rule)
            )
            if updated.status == "draft":
                await screen.api.series_action(item.id, "submit")
        except ApiError as exc:
            screen.report(exc, "定期配信の変更")
            return
        self.editing_series = None
        screen.notify(f"定期配信 {item.id} の変更について承認を依頼しました。", title="承認依頼")
        await screen.reset_form()

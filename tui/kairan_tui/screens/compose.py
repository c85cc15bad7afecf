"""配信作成: write a delivery, see it as residents will, choose its audience, test, submit."""

from __future__ import annotations

import datetime as dt
import inspect
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.timer import Timer
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from kairan_tui.client import ApiError
from kairan_tui.labels import (
    CONFIDENTIALITY_BLOCKED_REASON,
    JST,
    MESSAGES_MAX,
    channel_split,
    utf16_length,
)
from kairan_tui.modals.confirm import ConfirmModal
from kairan_tui.modals.test_recipient import RecipientCodeModal
from kairan_tui.modals.unsaved import UnsavedModal
from kairan_tui.screens.base import KairanScreen
from kairan_tui.screens.compose_rich import FormProblem, RichComposeMixin
from kairan_tui.widgets.line_preview import LinePreview
from kairan_tui.widgets.marks import Check
from kairan_tui.widgets.message_editor import MessageEditor
from kairan_tui.widgets.recurrence_form import RecurrenceForm
from kairan_tui.widgets.rich_items import ItemProblem, RichAddBar, collect_items, editor_for
from kairan_tui.widgets.segment_builder import SegmentBuilder, SegmentChoice, describe_segment
from kairand.api import schema
from kairand.api.schema import CONFIDENTIALITY_LABELS

AUDIENCE_DEBOUNCE_SECONDS = 0.4


def schedule_example(now: dt.datetime | None = None) -> str:
    """A placeholder that is never in the past: tomorrow at 9:00 (Japan time)."""
    today = (now or dt.datetime.now(JST)).astimezone(JST).date()
    return f"{today + dt.timedelta(days=1):%Y-%m-%d} 09:00"


def parse_schedule(text: str) -> dt.datetime:
    """「2026-12-01 09:30」 (Japan time) → aware datetime; raises FormProblem."""
    cleaned = text.strip().replace("/", "-").replace("T", " ")
    try:
        value = dt.datetime.strptime(cleaned, "%Y-%m-%d %H:%M")
    except ValueError:
        raise FormProblem(
            f"配信日時は「{schedule_example()}」のように、年-月-日 時:分の形で入力してください。"
        ) from None
    return value.replace(tzinfo=JST)


def _normalised_segment(segment: schema.SegmentFilter | None) -> object:
    """A segment in a form that compares equal whatever order options were ticked in."""
    if segment is None:
        return None
    data = segment.model_dump(mode="json")
    conditions = []
    for condition in data.get("conditions") or []:
        condition = dict(condition)
        if isinstance(condition.get("any_of"), list):
            condition["any_of"] = sorted(condition["any_of"])
        conditions.append(condition)
    data["conditions"] = sorted(conditions, key=lambda c: str(sorted(c.items())))
    return data


def _items_state(items: list[object]) -> list[object]:
    """Message items as compared for unsaved changes (empty text items ignored)."""
    state = []
    for item in items:
        if isinstance(item, str):
            data: object = {"type": "text", "text": item}
        else:
            dump = getattr(item, "model_dump", None)
            data = dump(mode="json") if callable(dump) else item
        if (
            isinstance(data, dict)
            and data.get("type") == "text"
            and not str(data.get("text", "")).strip()
        ):
            continue
        state.append(data)
    return state


def content_state(content: schema.DeliveryContent | None) -> dict[str, object]:
    """What the form holds, as compared to decide whether there are unsaved changes."""
    if content is None:
        return {
            "title": "",
            "confidentiality": 1,
            "messages": [],
            "segment": None,
            "silent": False,
            "urgent": False,
            "scheduled_at": "",
        }
    scheduled = ""
    if content.scheduled_at is not None:
        scheduled = f"{content.scheduled_at.astimezone(JST):%Y-%m-%d %H:%M}"
    return {
        "title": content.title.strip(),
        "confidentiality": content.confidentiality,
        "messages": _items_state(list(content.messages)),
        "segment": _normalised_segment(content.segment),
        "silent": content.notification_disabled,
        "urgent": content.urgent,
        "scheduled_at": scheduled,
    }


class ComposeScreen(RichComposeMixin, KairanScreen):
    SCREEN_NAME = "compose"
    SCREEN_TITLE = "配信作成"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+t", "test_send", "テスト送信"),
        Binding("ctrl+s", "save_draft", "下書き保存"),
        Binding("ctrl+r", "submit", "承認依頼"),
        Binding("ctrl+n", "new", "新規作成"),
        # In the help and as a button on the form; not in the key bar (it must fit 80 columns).
        Binding("ctrl+o", "register_test_recipient", "テスト送信先の登録", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.draft_id: int | None = None
        self.survey: schema.SurveyDefinition | None = None
        self.segment_choice = SegmentChoice(None, "", "")
        self.audience: int | None = None
        self._debounce: Timer | None = None
        self.message_count = 1
        self._pending_segment: schema.SegmentFilter | None = None
        self.saved_state: dict[str, object] = content_state(None)
        """The form as last saved or opened: anything else is unsaved work."""

    # -- layout ----------------------------------------------------------------------------

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="compose-main"):
            with VerticalScroll(id="compose-form"):
                yield Static("", id="draft-state", classes="hint")
                yield Label(
                    "件名（職員向けの管理用。登録者には表示されません）", classes="field-label"
                )
                yield Input(
                    placeholder="例：子育て支援センターのお知らせ", id="title", max_length=100
                )
                yield Label("機密性区分", classes="field-label")
                yield Select(
                    [(label, value) for value, label in CONFIDENTIALITY_LABELS.items()],
                    value=1,
                    allow_blank=False,
                    id="confidentiality",
                )
                yield Static(CONFIDENTIALITY_BLOCKED_REASON, id="class-blocked")
                with Vertical(id="messages"):
                    yield MessageEditor(1, id="message-1")
                with Horizontal(classes="button-row"):
                    yield Button("メッセージを追加", id="add-message")
                    yield Button("最後のメッセージを削除", id="remove-message")
                yield RichAddBar()  # image, sticker, card
                yield Label("配信対象（絞り込み条件）", classes="section-title")
                yield Vertical(id="segment-holder")
                yield Label("配信日時", classes="section-title")
                with Horizontal(id="schedule-row"):
                    yield Select(
                        [
                            ("承認後すぐに配信", "now"),
                            ("日時を指定（予約配信）", "at"),
                            ("繰り返し配信（定期配信）", "repeat"),
                        ],
                        value="now",
                        allow_blank=False,
                        id="schedule",
                    )
                    yield Input(placeholder=schedule_example(), id="scheduled-at", disabled=True)
                yield RecurrenceForm(id="recurrence")
                yield Check(
                    "通知音なしで配信する（スマートフォンの音やバイブで知らせません）", id="silent"
                )
                yield Check(
                    "緊急配信（ほかの配信より先に送ります。防災・子どもの安全など）", id="urgent"
                )
                with Horizontal(classes="button-row"):
                    yield Button("テスト送信", id="test-send")
                    yield Button("下書き保存", id="save-draft")
                    yield Button("承認依頼", id="submit", variant="primary")
                yield Button("テスト送信先の登録", id="register-test")
            with Vertical(id="compose-side"):
                yield Static("配信対象人数：—", id="audience")
                yield Static("", id="segment-summary", classes="hint")
                yield LinePreview(id="preview")

    def on_mount(self) -> None:
        self.kairan.compose_screen = self
        self.query_one("#class-blocked").display = False
        self.query_one(RecurrenceForm).display = False
        self.query_one("#title", Input).focus()
        self.load_survey()

    def refresh_data(self) -> None:
        if self.survey is None:
            self.load_survey()
        else:
            self.schedule_audience_count()

    @work(exit_on_error=False, exclusive=True, group="survey")
    async def load_survey(self) -> None:
        try:
            survey = await self.api.survey()
        except ApiError as exc:
            self.report(exc, "アンケートの設定を読み込み")
            return
        if self.survey is not None:
            return
        self.survey = survey.definition
        holder = self.query_one("#segment-holder", Vertical)
        await holder.mount(SegmentBuilder(survey.definition, id="segment"))
        if self._pending_segment is not None:
            self.query_one(SegmentBuilder).set_segment(self._pending_segment)
            self._pending_segment = None

    # -- live feedback ---------------------------------------------------------------------

    def on_message_editor_changed(self, _: MessageEditor.Changed) -> None:
        self._update_preview()

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        if event.checkbox.id == "silent":
            self._update_preview()

    def _update_preview(self) -> None:
        self.query_one(LinePreview).show(
            self.messages(), notification_disabled=self.query_one("#silent", Checkbox).value
        )

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "confidentiality":
            blocked = self.confidentiality() != 1
            self.query_one("#class-blocked").display = blocked
            for button_id in ("#test-send", "#submit"):
                self.query_one(button_id, Button).disabled = blocked
        elif event.select.id == "schedule":
            field = self.query_one("#scheduled-at", Input)
            field.disabled = event.value != "at"
            self.query_one(RecurrenceForm).display = event.value == "repeat"
            if not field.disabled:
                field.focus()

    def on_segment_builder_changed(self, event: SegmentBuilder.Changed) -> None:
        self.segment_choice = event.choice
        summary = event.choice.summary or event.choice.problem
        self.query_one("#segment-summary", Static).update(summary)
        self.schedule_audience_count()

    def schedule_audience_count(self) -> None:
        # Debounced: a count per keystroke or click would flood the daemon.
        if self._debounce is not None:
            self._debounce.stop()
        self._debounce = self.set_timer(AUDIENCE_DEBOUNCE_SECONDS, self.count_audience)

    @work(exit_on_error=False, exclusive=True, group="audience")
    async def count_audience(self) -> None:
        label = self.query_one("#audience", Static)
        segment = self.segment_choice.segment
        if segment is None:
            self.audience = None
            label.update("配信対象人数：—")
            return
        label.update("配信対象人数：数えています…")
        try:
            result = await self.api.audience_count(segment)
        except ApiError as exc:
            label.update("配信対象人数：—")
            self.report(exc, "配信対象人数を数え")
            return
        self.audience = result.count
        if result.count == 0:
            note = "\n（該当する登録者がいません。条件を見直してください）"
        elif result.small:
            note = "\n（対象が少人数です。条件をご確認ください）"
        else:
            note = ""
        split = f"\n（{channel_split(result.line, result.mail)}）" if result.mail else ""
        label.update(f"配信対象人数：{result.count:,} 人{split}{note}")

    # -- messages --------------------------------------------------------------------------

    async def on_button_pressed(self, event: Button.Pressed) -> None:
        actions = {
            "add-message": self.add_message,
            "remove-message": self.remove_message,
            "test-send": self.action_test_send,
            "save-draft": self.action_save_draft,
            "submit": self.action_submit,
            "register-test": self.action_register_test_recipient,
        }
        action = actions.get(event.button.id or "")
        if action is not None:
            event.stop()
            result = action()
            if inspect.isawaitable(result):
                await result

    def add_message(self) -> None:
        if self.message_count >= MESSAGES_MAX:
            self.notify(f"メッセージは{MESSAGES_MAX}件までです。", severity="warning")
            return
        self.message_count += 1
        editor = MessageEditor(self.message_count, id=f"message-{self.message_count}")
        self.query_one("#messages", Vertical).mount(editor)
        editor.call_after_refresh(lambda: editor.query_one("TextArea").focus())

    async def remove_message(self) -> None:
        if self.message_count <= 1:
            return
        await self.query_one(f"#message-{self.message_count}").remove()
        self.message_count -= 1
        self._update_preview()

    async def _set_messages(self, texts: list[schema.MessageItem]) -> None:
        """Replace every message editor (a new delivery, or a draft being reopened)."""
        holder = self.query_one("#messages", Vertical)
        await holder.remove_children()
        self.message_count = len(texts)
        await holder.mount_all([editor_for(n, item) for n, item in enumerate(texts, start=1)])
        self._update_preview()

    def messages(self) -> list[schema.MessageItem]:
        """Texts and complete image / sticker / card messages, in order (for the preview)."""
        return collect_items(self.query_one("#messages", Vertical), strict=False)

    def confidentiality(self) -> int:
        value = self.query_one("#confidentiality", Select).value
        return value if isinstance(value, int) else 1

    # -- building the delivery -------------------------------------------------------------

    def content(self, *, for_sending: bool) -> schema.DeliveryContent:
        title = self.query_one("#title", Input).value.strip()
        if not title:
            raise FormProblem("件名を入力してください。")
        klass = self.confidentiality()
        if for_sending and klass != 1:
            raise FormProblem(CONFIDENTIALITY_BLOCKED_REASON)
        try:
            messages = collect_items(self.query_one("#messages", Vertical), strict=True)
        except ItemProblem as problem:
            raise FormProblem(str(problem)) from None
        if not messages:
            raise FormProblem("メッセージを1件以上入力してください。")
        for number, text in enumerate(messages, start=1):
            if isinstance(text, str) and utf16_length(text) > 5000:
                raise FormProblem(
                    f"メッセージ {number} が5,000文字を超えています。短くしてください。"
                )
        segment = self.segment_choice.segment
        if segment is None:
            raise FormProblem(self.segment_choice.problem or "配信対象を選んでください。")
        scheduled_at = None
        if self.query_one("#schedule", Select).value == "at":
            scheduled_at = parse_schedule(self.query_one("#scheduled-at", Input).value)
            if for_sending and scheduled_at <= dt.datetime.now(JST):
                raise FormProblem(
                    "予約配信の日時が過ぎています。これから先の日時を入力してください。"
                )
        return schema.DeliveryContent.model_validate(
            {
                "title": title,
                "confidentiality": klass,
                "messages": [m if isinstance(m, str) else m.model_dump() for m in messages],
                "segment": segment.model_dump(mode="json"),
                "notification_disabled": self.query_one("#silent", Checkbox).value,
                "urgent": self.query_one("#urgent", Checkbox).value,
                "scheduled_at": scheduled_at,
            }
        )

    def _content_or_warn(self, *, for_sending: bool) -> schema.DeliveryContent | None:
        try:
            return self.content(for_sending=for_sending)
        except FormProblem as problem:
            self.notify(str(problem), title="入力内容を確認してください", severity="warning")
            return None

    async def _save(self, content: schema.DeliveryContent) -> int:
        if self.draft_id is None:
            self.draft_id = await self.api.create_draft(content)
        else:
            await self.api.update_draft(self.draft_id, content)
        self.saved_state = content_state(content)
        self.query_one("#draft-state", Static).update(
            f"配信番号 {self.draft_id} の下書きとして保存済み"
        )
        return self.draft_id

    # -- unsaved work -----------------------------------------------------------------------

    def form_state(self) -> dict[str, object]:
        schedule = self.query_one("#schedule", Select).value
        return {
            "title": self.query_one("#title", Input).value.strip(),
            "confidentiality": self.confidentiality(),
            "messages": _items_state(list(self.messages())),
            "segment": _normalised_segment(self.segment_choice.segment),
            "silent": self.query_one("#silent", Checkbox).value,
            "urgent": self.query_one("#urgent", Checkbox).value,
            "scheduled_at": (
                self.query_one("#scheduled-at", Input).value.strip() if schedule == "at" else ""
            ),
        }

    def has_unsaved_changes(self) -> bool:
        return self.form_state() != self.saved_state

    async def confirm_leave(self, doing: str) -> bool:
        """Before the form is replaced or closed: True when that may go ahead (nothing unsaved,
        saved now, or discarded on purpose); False to stay. Call from a worker."""
        if not self.has_unsaved_changes():
            return True
        choice = await self.app.push_screen_wait(UnsavedModal(doing))
        if choice == "discard":
            return True
        if choice != "save":
            return False
        content = self._content_or_warn(for_sending=False)
        if content is None:
            return False
        try:
            draft_id = await self._save(content)
        except ApiError as exc:
            self.report(exc, "下書きを保存")
            return False
        self.notify(f"下書きを保存しました（配信番号 {draft_id}）。", title="下書き保存")
        return True

    # -- actions ---------------------------------------------------------------------------

    def action_save_draft(self) -> None:
        content = self._content_or_warn(for_sending=False)
        if content is not None:
            self.save_draft(content)

    @work(exit_on_error=False, exclusive=True, group="compose-io")
    async def save_draft(self, content: schema.DeliveryContent) -> None:
        try:
            draft_id = await self._save(content)
        except ApiError as exc:
            self.report(exc, "下書きを保存")
            return
        self.notify(f"下書きを保存しました（配信番号 {draft_id}）。", title="下書き保存")

    def action_test_send(self) -> None:
        content = self._content_or_warn(for_sending=True)
        if content is not None:
            self.test_send(content)

    @work(exit_on_error=False, exclusive=True, group="compose-io")
    async def test_send(self, content: schema.DeliveryContent) -> None:
        try:
            draft_id = await self._save(content)
            result = await self.api.test_send(draft_id)
        except ApiError as exc:
            self.report(exc, "テスト送信")
            return
        if result.sent == 0:
            self.notify(
                "テスト送信先が登録されていません。「テスト送信先の登録」（Ctrl+O）から"
                "ご自身のLINEを登録してください。",
                title="テスト送信",
                severity="warning",
            )
        else:
            training = self.kairan.me is not None and self.kairan.me.training_mode
            where = "研修用スマートフォン（make phone の画面）" if training else "LINE"
            self.notify(
                f"テスト送信しました（{result.sent} 件）。{where}で確認してください。",
                title="テスト送信",
            )

    def action_submit(self) -> None:
        content = self._content_or_warn(for_sending=True)
        if content is not None:
            self.submit(content)

    @work(exit_on_error=False, exclusive=True, group="compose-io")
    async def submit(self, content: schema.DeliveryContent) -> None:
        if self.query_one("#schedule", Select).value == "repeat":
            await self.submit_series(content)  # approved once as a series
            return
        try:
            count = await self.api.audience_count(content.segment)
            if count.count == 0:
                reason = await self.why_nobody(content.segment)
        except ApiError as exc:
            self.report(exc, "配信対象人数を確認")
            return
        if count.count == 0:
            self.notify(
                f"該当する登録者がいません。{reason}",
                title="承認依頼できません",
                severity="error",
                timeout=15,
            )
            return
        when = "承認後すぐに配信" if content.scheduled_at is None else "予約配信"
        confirmed = await self.app.push_screen_wait(
            ConfirmModal(
                f"「{content.title}」の承認を依頼します",
                f"承認者が承認すると、{when}されます。承認依頼の後は内容を変更できません。",
                confirm_label="承認依頼する",
                audience=count.count,
                danger=False,
            )
        )
        if not confirmed:
            self.notify("承認依頼を取りやめました。", timeout=4)
            return
        try:
            draft_id = await self._save(content)
            await self.api.submit(draft_id)
        except ApiError as exc:
            self.report(exc, "承認依頼")
            return
        self.notify(
            f"承認を依頼しました（配信番号 {draft_id}）。承認されると配信されます。",
            title="承認依頼",
        )
        await self.reset_form()

    def action_new(self) -> None:
        self.start_new()

    @work(exit_on_error=False, exclusive=True, group="compose-leave")
    async def start_new(self) -> None:
        if await self.confirm_leave("新規作成"):
            await self.reset_form()

    async def reset_form(self) -> None:
        self.draft_id = None
        self.editing_series = None  # a series opened from 配信予定
        self.query_one("#draft-state", Static).update("")
        self.query_one("#title", Input).value = ""
        await self._set_messages([""])
        self.query_one("#silent", Checkbox).value = False
        self.query_one("#urgent", Checkbox).value = False
        self.query_one("#schedule", Select).value = "now"
        self.query_one("#confidentiality", Select).value = 1
        self.query_one("#scheduled-at", Input).value = ""
        for builder in self.query(SegmentBuilder):
            builder.clear()
        self.segment_choice = SegmentChoice(None, "", "")
        self.saved_state = content_state(None)
        self.query_one("#title", Input).focus()

    async def why_nobody(self, segment: schema.SegmentFilter) -> str:
        """Which condition leaves no one: the conditions are counted one after another and
        the first that brings the count to 0 is named (the daemon refuses with the same
        explanation)."""
        if segment.all_registered or not segment.conditions:
            return "登録を済ませた方がまだいません。"
        conditions = list(segment.conditions)
        for n in range(1, len(conditions) + 1):
            partial = schema.SegmentFilter.model_validate(
                {"conditions": [c.model_dump(mode="json") for c in conditions[:n]]}
            )
            if (await self.api.audience_count(partial)).count == 0:
                single = schema.SegmentFilter.model_validate(
                    {"conditions": [conditions[n - 1].model_dump(mode="json")]}
                )
                words = describe_segment(single, self.survey)
                if n == 1:
                    return f"「{words}」に当てはまる登録者がいません。条件を見直してください。"
                return (
                    f"「{words}」の条件を加えると、対象が0人になります（ほかの条件との"
                    "組み合わせに当てはまる方がいません）。条件を見直してください。"
                )
        return "条件を見直してください。"

    def action_register_test_recipient(self) -> None:
        self.register_test_recipient()

    @work(exit_on_error=False, exclusive=True, group="compose-io")
    async def register_test_recipient(self) -> None:
        try:
            code = await self.api.new_test_recipient_code()
            current = await self.api.test_recipients()
        except ApiError as exc:
            self.report(exc, "テスト送信先の登録コードを発行")
            return
        training = self.kairan.me is not None and self.kairan.me.training_mode
        await self.app.push_screen_wait(RecipientCodeModal(code, current.count, training))

    async def load_draft(self, detail: schema.DeliveryDetail) -> None:
        """Open an existing draft (from 配信履歴) for editing."""
        self.draft_id = detail.id
        content = detail.content
        self.saved_state = content_state(content)
        self.segment_choice = SegmentChoice(content.segment, "", "")
        self.query_one("#draft-state", Static).update(f"配信番号 {detail.id} の下書きを編集中")
        self.query_one("#title", Input).value = content.title
        self.query_one("#confidentiality", Select).value = content.confidentiality
        await self._set_messages(list(content.messages))
        self.query_one("#silent", Checkbox).value = content.notification_disabled
        self.query_one("#urgent", Checkbox).value = content.urgent
        if content.scheduled_at is not None:
            self.query_one("#schedule", Select).value = "at"
            local = content.scheduled_at.astimezone(JST)
            self.query_one("#scheduled-at", Input).value = f"{local:%Y-%m-%d %H:%M}"
        builders = self.query(SegmentBuilder)
        if builders:
            builders.first().set_segment(content.segment)
        else:
            self._pending_segment = content.segment

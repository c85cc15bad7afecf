"""緊急配信: fill in an approved alert template and send it at once to districts the staff
member's institution covers (no second approver; the daemon enforces the scope, the guardian
consent for a child field (K7) and class 1 (G3) — this screen only collects and explains).

Reached with two keys from the dashboard: F12, then the template is already selected and the
cursor is on the first field. Usable at 80×24: everything scrolls in one column."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, Label, Select, SelectionList, Static

from kairan_tui.client import ApiError
from kairan_tui.labels import JST
from kairan_tui.modals.confirm import ConfirmModal
from kairan_tui.screens.base import KairanScreen
from kairand.api import schema


def parse_consent_time(text: str) -> dt.datetime | None:
    """「2026-12-01 15:30」(Japan time) → an aware datetime; None when not in that form."""
    try:
        moment = dt.datetime.strptime(text.strip(), "%Y-%m-%d %H:%M")
    except ValueError:
        return None
    return moment.replace(tzinfo=JST)


class AlertScreen(KairanScreen):
    SCREEN_NAME = "alert"
    SCREEN_TITLE = "緊急配信"
    DEFAULT_CSS = """
    AlertScreen #alert-fields { height: auto; }
    AlertScreen #alert-districts { height: auto; max-height: 8; }
    AlertScreen Label { margin-top: 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "send", "送信"),
        Binding("ctrl+r", "reload", "再読込"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.templates: list[schema.AlertTemplateOut] = []
        self.institutions: list[schema.InstitutionOut] = []
        self.districts: list[schema.DistrictOut] = []
        self._fields_lock = asyncio.Lock()
        self._shown: int | None = None

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(id="alert-body"):
            yield Static(
                "承認済みのテンプレートに記入して、担当する学校区へ直ちに送信します"
                "（二人目の承認は不要です）。",
                id="alert-lead",
                classes="hint",
            )
            yield Label("テンプレート")
            yield Select[int]([], id="alert-template", prompt="テンプレートを選択")
            yield Label("発信元")
            yield Select[str]([], id="alert-institution", prompt="発信元を選択")
            yield Label("配信する学校区（スペースで選択）")
            yield SelectionList[str](id="alert-districts")
            yield Vertical(id="alert-fields")
            yield Static("", id="alert-consent-note", classes="hint")
            yield Input(placeholder="同意した方（例：被害児童の保護者（母））", id="consent-by")
            yield Input(placeholder="同意日時（例：2026-12-01 15:30）", id="consent-at")
            with Horizontal(classes="buttons"):
                yield Button("送信する（Ctrl+S）", id="alert-send", variant="error")

    def action_reload(self) -> None:
        self._shown = None
        self.load()

    def refresh_data(self) -> None:
        # Coming back from the confirmation (or another screen) keeps what was filled in.
        if not self.templates and not self.institutions:
            self.load()

    @work(exit_on_error=False, exclusive=True, group="alert")
    async def load(self) -> None:
        try:
            templates = await self.api.alert_templates()
            mine = await self.api.my_institutions()
            districts = await self.api.districts()
        except ApiError as exc:
            self.report(exc, "緊急配信の準備")
            return
        self.templates = [t for t in templates.items if t.status == "approved"]
        self.institutions = mine.items
        self.districts = districts.items
        template = self.query_one("#alert-template", Select)
        template.set_options([(t.name, t.id) for t in self.templates])
        inst = self.query_one("#alert-institution", Select)
        inst.set_options([(i.name, i.code) for i in self.institutions])
        if not self.institutions:
            self.query_one("#alert-lead", Static).update(
                "発信元（園・学校・教育委員会など）に所属していないため、緊急配信は送信できません。"
                "管理者に所属の登録を依頼してください。"
            )
        if self.templates:
            template.value = self.templates[0].id
        if self.institutions:
            inst.value = self.institutions[0].code
        await self._show_fields()
        self._show_districts()

    def _template(self) -> schema.AlertTemplateOut | None:
        value = self.query_one("#alert-template", Select).value
        return next((t for t in self.templates if t.id == value), None)

    def _institution(self) -> schema.InstitutionOut | None:
        value = self.query_one("#alert-institution", Select).value
        return next((i for i in self.institutions if i.code == value), None)

    def _show_districts(self) -> None:
        inst = self._institution()
        listing = self.query_one("#alert-districts", SelectionList)
        listing.clear_options()
        if inst is None:
            return
        covered = [d for d in self.districts if inst.all_districts or d.code in inst.districts]
        listing.add_options([(d.name, d.code) for d in covered])

    async def _show_fields(self) -> None:
        # Called by load() and by the template selector's Changed event: one at a time, once
        # per template.
        async with self._fields_lock:
            template = self._template()
            if template is None or template.id == self._shown:
                return
            self._shown = template.id
            await self._mount_fields(template)

    async def _mount_fields(self, template: schema.AlertTemplateOut) -> None:
        box = self.query_one("#alert-fields", Vertical)
        await box.remove_children()
        widgets: list[Label | Input] = []
        for field in template.fields:
            mark = "（必須）" if field.required else "（任意）"
            if field.child:
                mark += "※保護者の同意が必要"
            widgets.append(Label(f"{field.label}{mark}"))
            widgets.append(
                Input(
                    placeholder=field.hint or field.label,
                    id=f"field-{field.code}",
                    max_length=field.max_length,
                )
            )
        await box.mount_all(widgets)
        has_child = any(f.child for f in template.fields)
        self.query_one("#alert-consent-note", Static).update(
            "子どもに関する項目を記入する場合は、保護者の同意（誰から・いつ）を記録してください。"
            if has_child
            else ""
        )
        self.query_one("#consent-by", Input).display = has_child
        self.query_one("#consent-at", Input).display = has_child
        first = box.query(Input)
        if first:
            first.first().focus()

    async def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "alert-template":
            await self._show_fields()
        elif event.select.id == "alert-institution":
            self._show_districts()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "alert-send":
            self.action_send()

    def _request(self) -> schema.AlertSend | str:
        template, inst = self._template(), self._institution()
        if template is None:
            return "テンプレートを選んでください。"
        if inst is None:
            return "発信元を選んでください。"
        districts = list(self.query_one("#alert-districts", SelectionList).selected)
        if not districts:
            return "配信する学校区を1つ以上選んでください。"
        values = {
            f.code: self.query_one(f"#field-{f.code}", Input).value
            for f in template.fields
            if self.query_one(f"#field-{f.code}", Input).value.strip()
        }
        consent = None
        by = self.query_one("#consent-by", Input).value.strip()
        at_text = self.query_one("#consent-at", Input).value.strip()
        if by or at_text:
            at = parse_consent_time(at_text)
            if at is None:
                return "同意日時は「2026-12-01 15:30」の形で入力してください。"
            consent = schema.GuardianConsentIn(by=by, at=at)
        return schema.AlertSend(
            template_id=template.id, institution=inst.code, districts=districts, values=values,
            guardian_consent=consent,
        )  # fmt: skip

    def action_send(self) -> None:
        request = self._request()
        if isinstance(request, str):
            self.notify(request, title="入力を確認してください", severity="warning")
            return
        names = {d.code: d.name for d in self.districts}
        body = (
            "次の学校区の登録者に直ちに送信します（取り消しはできません。誤りがあれば"
            "承認者が訂正・解除を送ります）。\n"
            + "、".join(names.get(c, c) for c in request.districts)
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self.send(request)

        self.app.push_screen(
            ConfirmModal("緊急配信を送信しますか", body, confirm_label="送信する"), answered
        )

    @work(exit_on_error=False, exclusive=True, group="alert-send")
    async def send(self, request: schema.AlertSend) -> None:
        try:
            sent = await self.api.send_alert(request)
        except ApiError as exc:
            self.report(exc, "緊急配信を送信")
            return
        self.notify(
            f"配信 {sent.delivery_id} として送信を開始しました。承認者など{sent.notified}人に"
            "通知しました。進み具合は配信履歴で確認できます。",
            title="緊急配信を送信しました",
            timeout=15,
        )
        for field in self.query("#alert-fields Input").results(Input):
            field.value = ""

"""配信サービス: programs with their registered counts (aggregate only; small cells shown as
"<N"), per school district; the sending institutions and the districts they cover; alert
templates and their approval (an approver other than the writer). The district list itself is
managed with `kairanctl programs districts import` or the API (CSV)."""

from __future__ import annotations

from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Static

from kairan_tui.client import ApiError
from kairan_tui.modals.confirm import ConfirmModal
from kairan_tui.modals.follow_up import FollowUpModal
from kairan_tui.screens.base import KairanScreen
from kairand.api import schema

STATUS = {"draft": "承認待ち", "approved": "承認済み", "retired": "廃止"}
KINDS = {"alert": "緊急配信", "correction": "訂正", "all_clear": "解除"}


class ProgramsScreen(KairanScreen):
    SCREEN_NAME = "programs"
    SCREEN_TITLE = "配信サービス"
    DEFAULT_CSS = """
    ProgramsScreen DataTable { height: auto; max-height: 16; margin-bottom: 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "reload", "最新の情報に更新"),
        Binding("a", "approve", "テンプレートを承認"),
        Binding("f", "follow_up", "訂正・解除"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.templates: list[schema.AlertTemplateOut] = []
        self.alerts: list[schema.AlertOut] = []

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(id="programs-body"):
            yield Static("配信サービスと登録数（学校区別）", classes="box-title")
            yield DataTable(id="programs-table", cursor_type="row", zebra_stripes=True)
            yield Static("発信元と担当する学校区", classes="box-title")
            yield DataTable(id="institutions-table", cursor_type="row", zebra_stripes=True)
            yield Static("緊急配信テンプレート（a：承認）", classes="box-title")
            yield DataTable(id="templates-table", cursor_type="row", zebra_stripes=True)
            yield Static("最近の緊急配信（f：訂正・解除、承認者のみ）", classes="box-title")
            yield DataTable(id="alerts-table", cursor_type="row", zebra_stripes=True)
            yield Static(
                "学校区の一覧は kairanctl programs districts import（CSV）で更新します。",
                classes="hint",
            )

    def on_mount(self) -> None:
        self.query_one("#programs-table", DataTable).add_columns("配信サービス", "学校区", "登録数")
        self.query_one("#institutions-table", DataTable).add_columns("発信元", "種別", "担当学校区")
        self.query_one("#templates-table", DataTable).add_columns("テンプレート", "状態", "作成者")
        self.query_one("#alerts-table", DataTable).add_columns("配信", "種類", "発信元", "学校区数")

    def action_reload(self) -> None:
        self.refresh_data()

    def refresh_data(self) -> None:
        self.load()

    @work(exit_on_error=False, exclusive=True, group="programs")
    async def load(self) -> None:
        try:
            programs = await self.api.programs()
            institutions = await self.api.institutions()
            districts = await self.api.districts()
            allowed = self.kairan.me.allowed if self.kairan.me else []
            templates = (
                await self.api.alert_templates() if "alert_templates.list" in allowed else None
            )
            alerts = await self.api.alerts() if "alerts.list" in allowed else None
        except ApiError as exc:
            self.report(exc, "配信サービスを表示")
            return
        table = self.query_one("#programs-table", DataTable)
        table.clear()
        for p in programs.items:
            table.add_row(p.name + ("（年度登録）" if p.annual else ""), "合計", p.registered)
            for district, count in p.districts.items():
                table.add_row("", district, count)
        names = {d.code: d.name for d in districts.items}
        inst = self.query_one("#institutions-table", DataTable)
        inst.clear()
        for i in institutions.items:
            covered = (
                "全学校区" if i.all_districts else "、".join(names.get(c, c) for c in i.districts)
            )
            inst.add_row(i.name, schema.INSTITUTION_KIND_LABELS.get(i.kind, i.kind), covered)
        tt = self.query_one("#templates-table", DataTable)
        tt.clear()
        self.templates = templates.items if templates else []
        for t in self.templates:
            tt.add_row(t.name, STATUS.get(t.status, t.status), t.created_by, key=str(t.id))
        at = self.query_one("#alerts-table", DataTable)
        at.clear()
        self.alerts = alerts.items if alerts else []
        inst_names = {i.code: i.name for i in institutions.items}
        for a in self.alerts:
            at.add_row(
                f"#{a.delivery_id}",
                KINDS.get(a.kind, a.kind),
                inst_names.get(a.institution, a.institution),
                str(len(a.districts)),
                key=str(a.delivery_id),
            )

    def action_follow_up(self) -> None:
        allowed = self.kairan.me.allowed if self.kairan.me else []
        if "alerts.follow_up" not in allowed:
            self.notify("訂正・解除は承認者が行います。", severity="warning")
            return
        table = self.query_one("#alerts-table", DataTable)
        originals = [a for a in self.alerts if a.kind == "alert"]
        if not self.alerts or table.cursor_row < 0:
            return
        chosen = self.alerts[min(table.cursor_row, len(self.alerts) - 1)]
        target = (
            chosen
            if chosen.kind == "alert"
            else next((a for a in originals if a.delivery_id == chosen.follows), None)
        )
        if target is None:
            return

        def answered(result: tuple[str, str] | None) -> None:
            if result is not None:
                self.send_follow_up(target.delivery_id, result[0], result[1])

        self.app.push_screen(FollowUpModal(f"緊急配信 #{target.delivery_id}"), answered)

    @work(exit_on_error=False, group="programs-follow-up")
    async def send_follow_up(self, delivery_id: int, kind: str, body: str) -> None:
        try:
            sent = await self.api.follow_up(
                delivery_id,
                schema.AlertFollowUp(kind=kind, body=body),  # type: ignore[arg-type]
            )
        except ApiError as exc:
            self.report(exc, "訂正・解除を送信")
            return
        self.notify(f"配信 {sent.delivery_id} として送信を開始しました。", timeout=8)
        self.load()

    def action_approve(self) -> None:
        table = self.query_one("#templates-table", DataTable)
        if not self.templates or table.cursor_row < 0:
            return
        template = self.templates[min(table.cursor_row, len(self.templates) - 1)]
        if template.status != "draft":
            self.notify("承認待ちのテンプレートを選んでください。", severity="warning")
            return
        fields = "、".join(
            f.label + ("（保護者の同意が必要）" if f.child else "") for f in template.fields
        )
        body = (
            f"「{template.name}」を承認すると、発信元の作成者がこのテンプレートで二人目の承認なしに"
            f"緊急配信できるようになります。\n項目：{fields}"
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self.approve(template.id)

        modal = ConfirmModal("テンプレートを承認しますか", body, confirm_label="承認する")
        modal.danger = False
        self.app.push_screen(modal, answered)

    @work(exit_on_error=False, group="programs-approve")
    async def approve(self, template_id: int) -> None:
        try:
            await self.api.approve_template(template_id)
        except ApiError as exc:
            self.report(exc, "テンプレートを承認")
            return
        self.notify("テンプレートを承認しました。", timeout=5)
        self.load()

"""配信サービス: programs with their registered counts (aggregate only; small cells shown as
"<N"), per school district; the sending institutions and the districts they cover; alert
templates and their approval (an approver other than the writer). Administrators create and
edit programs (raising the consent version when the purpose notice changed), sending
institutions and the district list (CSV file); authors and approvers create alert templates
(kairan_tui.modals.programs_admin). On the templates table, `e` writes a revision (修正案) of the
template on the cursor (approving it replaces the original) and `x` withdraws it (approvers and
administrators)."""

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
from kairan_tui.modals.programs_admin import (
    AlertTemplateModal,
    DistrictImportModal,
    InstitutionEdit,
    InstitutionModal,
    ProgramModal,
)
from kairan_tui.screens.base import KairanScreen
from kairand.api import schema

STATUS = {"draft": "下書き（承認待ち）", "approved": "承認済み", "retired": "取り下げ"}
KINDS = {"alert": "緊急配信", "correction": "訂正", "all_clear": "解除"}


def status_label(t: schema.AlertTemplateOut, every: list[schema.AlertTemplateOut]) -> str:
    """A template's state in Japanese: a draft that revises another is its 修正案, and a
    template retired by an approved revision says which one replaced it."""
    if t.status == "draft" and t.replaces is not None:
        return f"No.{t.replaces}の修正案（承認待ち）"
    if t.status == "retired":
        newer = next(
            (o.id for o in every if o.replaces == t.id and o.approved_by is not None), None
        )
        if newer is not None:
            return f"取り下げ（No.{newer}に修正）"
    return STATUS.get(t.status, t.status)


class TemplatesTable(DataTable[str]):
    """The alert templates; its keys act on the template on the cursor (shown in the footer
    while the table has the focus; `e` elsewhere on the screen edits a program)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("e", "screen.revise_template", "テンプレートを修正"),
        Binding("x", "screen.retire_template", "テンプレートを取り下げ"),
    ]


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
        Binding("n", "new_program", "配信サービスを作成"),
        Binding("e", "edit_program", "配信サービスを変更"),
        Binding("t", "new_template", "テンプレートを作成"),
        Binding("i", "edit_institution", "発信元を追加・変更"),
        Binding("d", "import_districts", "学校区をCSVから取り込む"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.templates: list[schema.AlertTemplateOut] = []
        self.alerts: list[schema.AlertOut] = []
        self.programs: list[schema.ProgramOut] = []
        self.program_rows: list[str] = []
        """The program code of each row of #programs-table (district rows included)."""
        self.institutions: list[schema.InstitutionOut] = []
        self.districts: list[schema.DistrictOut] = []

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(id="programs-body"):
            yield Static(
                "配信サービスと登録数（学校区別）（n：作成、e：変更、d：学校区の取り込み）",
                classes="box-title",
            )
            yield DataTable(id="programs-table", cursor_type="row", zebra_stripes=True)
            yield Static("発信元と担当する学校区（i：追加・変更）", classes="box-title")
            yield DataTable(id="institutions-table", cursor_type="row", zebra_stripes=True)
            yield Static(
                "緊急配信テンプレート（t：作成、a：承認、表を選んで e：修正、x：取り下げ）",
                classes="box-title",
            )
            yield TemplatesTable(id="templates-table", cursor_type="row", zebra_stripes=True)
            yield Static("最近の緊急配信（f：訂正・解除、承認者のみ）", classes="box-title")
            yield DataTable(id="alerts-table", cursor_type="row", zebra_stripes=True)
            yield Static(
                "配信サービス・発信元・学校区の管理は管理者が行います"
                "（kairanctl programs でも操作できます）。",
                classes="hint",
            )

    def on_mount(self) -> None:
        self.query_one("#programs-table", DataTable).add_columns("配信サービス", "学校区", "登録数")
        self.query_one("#institutions-table", DataTable).add_columns("発信元", "種別", "担当学校区")
        self.query_one("#templates-table", DataTable).add_columns(
            "No.", "テンプレート", "状態", "作成者"
        )
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
        self.programs, self.program_rows = programs.items, []
        self.institutions, self.districts = institutions.items, districts.items
        for p in programs.items:
            name = p.name + ("（年度登録）" if p.annual else "")
            if p.registered_mail == "0":
                table.add_row(name, "合計", p.registered)
                self.program_rows.append(p.code)
            else:  # members by mail are counted apart (the districts are LINE's)
                table.add_row(name, "LINE", p.registered)
                table.add_row("", "メール", p.registered_mail)
                self.program_rows += [p.code, p.code]
            for district, count in p.districts.items():
                by_mail = p.districts_mail.get(district)
                table.add_row("", district, f"{count}（メール {by_mail}）" if by_mail else count)
                self.program_rows.append(p.code)
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
            tt.add_row(
                str(t.id), t.name, status_label(t, self.templates), t.created_by, key=str(t.id)
            )
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

    def _selected_template(self) -> schema.AlertTemplateOut | None:
        table = self.query_one("#templates-table", DataTable)
        if not self.templates or table.cursor_row < 0:
            return None
        return self.templates[min(table.cursor_row, len(self.templates) - 1)]

    def _open_revision(self, template: schema.AlertTemplateOut) -> schema.AlertTemplateOut | None:
        return next(
            (t for t in self.templates if t.replaces == template.id and t.status == "draft"), None
        )

    def action_approve(self) -> None:
        template = self._selected_template()
        if template is None:
            return
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
        if template.replaces is not None:
            body += (
                f"\nこれはNo.{template.replaces}の修正案です。承認するとNo.{template.replaces}は"
                "取り下げられ、この修正案に置き換わります。"
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

    # -- administration (programs, templates, institutions, districts) -------------

    def _may(self, route: str, what: str) -> bool:
        allowed = self.kairan.me.allowed if self.kairan.me else []
        if route not in allowed:
            self.notify(f"{what}は権限のある職員が行います。", severity="warning")
            return False
        return True

    def action_new_program(self) -> None:
        if self._may("programs.put", "配信サービスの作成"):
            self.app.push_screen(ProgramModal(), self._save_program)

    def action_edit_program(self) -> None:
        if not self._may("programs.put", "配信サービスの変更"):
            return
        table = self.query_one("#programs-table", DataTable)
        if not self.program_rows or table.cursor_row < 0:
            return
        code = self.program_rows[min(table.cursor_row, len(self.program_rows) - 1)]
        program = next((p for p in self.programs if p.code == code), None)
        if program is None or program.is_default:
            self.notify(
                "市政情報（既定の配信サービス）はアンケート設定の画面で変更します。",
                severity="warning",
            )
            return
        self.app.push_screen(ProgramModal(program), self._save_program)

    def _save_program(self, result: tuple[str, dict] | None) -> None:
        if result is not None:
            self.put_program(*result)

    @work(exit_on_error=False, group="programs-admin")
    async def put_program(self, code: str, definition: dict) -> None:
        try:
            await self.api.put_program(code, definition)
        except ApiError as exc:
            self.report(exc, "配信サービスを保存")
            return
        self.notify(f"配信サービス「{definition['name']}」を保存しました。", timeout=5)
        self.load()

    def action_revise_template(self) -> None:
        if not self._may("alert_templates.create", "テンプレートの修正"):
            return
        template = self._selected_template()
        if template is None:
            return
        if template.status == "retired":
            self.notify(
                "取り下げたテンプレートは修正できません。新しく作成してください（t）。",
                severity="warning",
            )
            return
        pending = self._open_revision(template)
        if pending is not None:
            self.notify(
                f"このテンプレートには承認待ちの修正案（No.{pending.id}）があります。"
                "その修正案を承認するか取り下げてから修正してください。",
                severity="warning",
            )
            return
        programs = [(p.code, p.name) for p in self.programs if not p.is_default]

        def answered(body: schema.AlertTemplateCreate | None) -> None:
            if body is not None:
                self.create_template(body)

        self.app.push_screen(AlertTemplateModal(programs, template), answered)

    def action_retire_template(self) -> None:
        if not self._may("alert_templates.retire", "テンプレートの取り下げ"):
            return
        template = self._selected_template()
        if template is None:
            return
        if template.status == "retired":
            self.notify("このテンプレートはすでに取り下げられています。", severity="warning")
            return
        body = f"「{template.name}」（No.{template.id}）を取り下げます。"
        if template.status == "approved":
            body += "取り下げると、発信元の作成者はこのテンプレートで緊急配信できなくなります。"
        if template.status == "draft" and template.replaces is not None:
            body += f"元のテンプレート（No.{template.replaces}）はそのまま使えます。"
        pending = self._open_revision(template)
        if pending is not None:
            body += f"\n承認待ちの修正案（No.{pending.id}）も取り下げられます。"
        body += "\n送信済みの緊急配信の訂正・解除は、取り下げた後も行えます。"

        def answered(yes: bool | None) -> None:
            if yes:
                self.retire(template.id)

        self.app.push_screen(
            ConfirmModal("テンプレートを取り下げますか", body, confirm_label="取り下げる"), answered
        )

    @work(exit_on_error=False, group="programs-approve")
    async def retire(self, template_id: int) -> None:
        try:
            await self.api.retire_template(template_id)
        except ApiError as exc:
            self.report(exc, "テンプレートを取り下げ")
            self.load()
            return
        self.notify(f"テンプレートNo.{template_id}を取り下げました。", timeout=5)
        self.load()

    def action_new_template(self) -> None:
        if not self._may("alert_templates.create", "テンプレートの作成"):
            return
        programs = [(p.code, p.name) for p in self.programs if not p.is_default]
        if not programs:
            self.notify("先に配信サービスを作成してください。", severity="warning")
            return

        def answered(body: schema.AlertTemplateCreate | None) -> None:
            if body is not None:
                self.create_template(body)

        self.app.push_screen(AlertTemplateModal(programs), answered)

    @work(exit_on_error=False, group="programs-admin")
    async def create_template(self, body: schema.AlertTemplateCreate) -> None:
        try:
            await self.api.create_alert_template(body)
        except ApiError as exc:
            self.report(exc, "テンプレートを作成")
            return
        if body.replaces is not None:
            self.notify(
                f"修正案「{body.name}」を作成しました。別の承認者が承認すると"
                f"No.{body.replaces}と置き換わります（それまではNo.{body.replaces}を使えます）。",
                timeout=8,
            )
        else:
            self.notify(
                f"テンプレート「{body.name}」を作成しました。別の承認者の承認後に使えます。",
                timeout=8,
            )
        self.load()

    def action_edit_institution(self) -> None:
        if not self._may("institutions.put", "発信元の追加・変更"):
            return
        table = self.query_one("#institutions-table", DataTable)
        current = (
            self.institutions[min(table.cursor_row, len(self.institutions) - 1)]
            if self.institutions and table.cursor_row >= 0 and table.has_focus
            else None
        )

        def answered(edit: InstitutionEdit | None) -> None:
            if edit is not None:
                self.put_institution(edit)

        self.app.push_screen(InstitutionModal(self.districts, current), answered)

    @work(exit_on_error=False, group="programs-admin")
    async def put_institution(self, edit: InstitutionEdit) -> None:
        try:
            await self.api.put_institution(edit.code, edit.body)
            if edit.staff is not None:
                await self.api.assign_institution_staff(edit.code, edit.staff)
        except ApiError as exc:
            self.report(exc, "発信元を保存")
            self.load()
            return
        self.notify(f"発信元「{edit.body.name}」を保存しました。", timeout=5)
        self.load()

    def action_import_districts(self) -> None:
        if not self._may("districts.upload", "学校区の取り込み"):
            return

        def answered(text: str | None) -> None:
            if text is not None:
                self.import_districts(text)

        self.app.push_screen(DistrictImportModal(), answered)

    @work(exit_on_error=False, group="programs-admin")
    async def import_districts(self, csv_text: str) -> None:
        try:
            result = await self.api.import_districts(csv_text)
        except ApiError as exc:
            self.report(exc, "学校区を取り込み")
            return
        self.notify(
            f"学校区を取り込みました（追加 {result.added}件、更新 {result.updated}件、"
            f"使用終了 {result.retired}件）。",
            timeout=8,
        )
        self.load()

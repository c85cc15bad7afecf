"""Revising and withdrawing alert templates on the 配信サービス screen, against the fake API:
`e` on the templates table opens the template dialog prefilled from the template on the cursor
and sends a revision (修正案) naming it; `x` asks for confirmation and withdraws it; the states
read in Japanese; the keys are in the footer at 80×24 while the table has the focus."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable, Input, TextArea
from textual.widgets._footer import FooterKey

from kairan_tui.modals import confirm
from kairan_tui.modals.confirm import ConfirmModal
from kairan_tui.modals.programs_admin import AlertTemplateModal, keep_field_details
from kairan_tui.screens.programs import ProgramsScreen
from kairand.api import schema
from tests.support.tui_fake_programs import revision_of_first
from tests.support.tui_helpers import notifications, open_programs, wait_until

SIZE = (80, 24)


async def _open(pilot, app) -> ProgramsScreen:
    screen: ProgramsScreen = await open_programs(pilot, app, lambda s: len(s.templates) >= 2)
    return screen


def _said(app, text: str):
    return lambda: any(text in m for m in notifications(app))


def _cells(screen: ProgramsScreen, column: int) -> list[str]:
    table = screen.query_one("#templates-table", DataTable)
    return [str(table.get_row_at(i)[column]) for i in range(table.row_count)]


async def _select(pilot, screen: ProgramsScreen, row: int) -> None:
    table = screen.query_one("#templates-table", DataTable)
    table.focus()
    table.move_cursor(row=row)
    await pilot.pause()


@pytest.mark.req("K8")
async def test_e_writes_a_revision_prefilled_from_the_template(app_for, fake) -> None:
    app = app_for("ito")
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open(pilot, app)
        assert _cells(screen, 2) == ["承認済み", "下書き（承認待ち）"]
        await _select(pilot, screen, 0)
        # While the table has the focus, its keys are in the footer (and fit 80 columns).
        await pilot.pause(0.2)
        shown = {
            k.description
            for k in app.screen.query(FooterKey)
            if k.region.width and k.region.right <= SIZE[0]
        }
        assert {"テンプレートを修正", "テンプレートを取り下げ"} <= shown
        await pilot.press("e")
        await wait_until(pilot, lambda: isinstance(app.screen, AlertTemplateModal))
        modal = app.screen
        assert modal.query_one("#template-name", Input).value == "不審者情報"
        assert modal.query_one("#template-title", Input).value == "不審者情報"
        lines = modal.query_one("#template-fields", TextArea).text.splitlines()
        assert lines[:2] == ["日時（日時）", "場所（場所）"]
        assert modal.query_one("#template-program").disabled
        modal.query_one("#template-title", Input).value = "不審者・声かけ情報"
        modal.query_one("#template-fields", TextArea).text = "\n".join([*lines, "連絡先（任意）"])
        await pilot.press("ctrl+s")
        await wait_until(pilot, _said(app, "修正案「不審者情報」を作成しました"))
        made = fake.call(lambda: fake.state.programs["templates"][-1])
        assert made["replaces"] == 1 and made["status"] == "draft"
        assert made["title"] == "不審者・声かけ情報" and made["fields"][-1]["label"] == "連絡先"
        # An unchanged field keeps its hint and length limit (the lines do not show them).
        place = next(f for f in made["fields"] if f["label"] == "場所")
        assert place["max_length"] == 60 and "番地" in place["hint"]
        await wait_until(pilot, lambda: len(screen.templates) == 3)
        assert _cells(screen, 2)[2] == "No.1の修正案（承認待ち）"
        # A second revision of the same template is not offered while this one waits.
        await _select(pilot, screen, 0)
        await pilot.press("e")
        await wait_until(pilot, _said(app, "承認待ちの修正案（No.3）があります"))
        assert isinstance(app.screen, ProgramsScreen)


@pytest.mark.req("K8")
async def test_approving_a_revision_shows_the_original_replaced(app_for, fake, monkeypatch) -> None:
    monkeypatch.setattr(confirm, "GUARD_SECONDS", 0.0)
    fake.call(lambda: revision_of_first(fake.state.programs))
    app = app_for("ito")
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open(pilot, app)
        await wait_until(pilot, lambda: len(screen.templates) == 3)
        await _select(pilot, screen, 2)
        await pilot.press("a")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        assert "No.1は取り下げられ" in app.screen.body
        await pilot.press("y")
        await wait_until(pilot, _said(app, "テンプレートを承認しました"))
        await wait_until(pilot, lambda: _cells(screen, 2)[0] == "取り下げ（No.3に修正）")
        assert _cells(screen, 2)[2] == "承認済み"


@pytest.mark.req("K8")
async def test_x_withdraws_after_confirmation(app_for, fake, monkeypatch) -> None:
    monkeypatch.setattr(confirm, "GUARD_SECONDS", 0.0)
    fake.call(lambda: revision_of_first(fake.state.programs))
    app = app_for("suzuki")  # an approver
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open(pilot, app)
        await wait_until(pilot, lambda: len(screen.templates) == 3)
        await _select(pilot, screen, 0)
        # Esc keeps it.
        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        body = app.screen.body
        assert "「不審者情報」（No.1）を取り下げます" in body
        assert "承認待ちの修正案（No.3）も取り下げられます" in body
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, ProgramsScreen))
        assert fake.call(lambda: fake.state.programs.get("retired")) is None
        # Y withdraws it.
        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("y")
        await wait_until(pilot, _said(app, "テンプレートNo.1を取り下げました"))
        assert fake.call(lambda: fake.state.programs["retired"]) == [(1, "suzuki")]
        await wait_until(pilot, lambda: _cells(screen, 2)[0] == "取り下げ")
        assert _cells(screen, 2)[2] == "取り下げ"
        # A withdrawn template is neither withdrawn again nor revised.
        await _select(pilot, screen, 0)
        await pilot.press("x")
        await wait_until(pilot, _said(app, "すでに取り下げられています"))
        assert isinstance(app.screen, ProgramsScreen)


@pytest.mark.req("K8")
async def test_authors_are_told_who_may_withdraw(app_for, fake) -> None:
    app = app_for("sato")  # an author
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open(pilot, app)
        await _select(pilot, screen, 0)
        await pilot.press("x")
        await wait_until(pilot, _said(app, "テンプレートの取り下げは権限のある職員が行います"))
        assert isinstance(app.screen, ProgramsScreen)
        assert fake.call(lambda: fake.state.programs.get("retired")) is None
        # Authors may write a revision (another person approves it).
        await pilot.press("e")
        await wait_until(pilot, lambda: isinstance(app.screen, AlertTemplateModal))


def test_revised_fields_keep_details_only_when_unchanged() -> None:
    before = [
        schema.TemplateFieldOut(code="place", label="場所", kind="place", required=True,
                                max_length=60, child=False, hint="町名まで"),
        schema.TemplateFieldOut(code="what", label="内容", kind="text", required=True,
                                max_length=400, child=False, hint=""),
    ]  # fmt: skip
    lines = [
        {"code": "f1", "label": "場所", "kind": "place", "required": True, "max_length": 60,
         "child": False, "hint": "default"},
        {"code": "f2", "label": "内容", "kind": "datetime", "required": True, "max_length": 40,
         "child": False, "hint": ""},
    ]  # fmt: skip
    kept = keep_field_details(lines, before)
    assert kept[0]["hint"] == "町名まで"
    assert kept[1]["max_length"] == 40  # the kind changed: defaults

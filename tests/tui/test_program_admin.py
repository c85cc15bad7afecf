"""配信サービスの管理 from the TUI, against the fake API: an administrator creates a
program, edits one and raises its consent version, adds a sending institution with its
districts and head, and imports the district list from a CSV file (a bad line is reported
with its number); an author/approver creates an alert template; the dialogs' parsing rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input, TextArea

from kairan_tui.modals.programs_admin import (
    AlertTemplateModal,
    DistrictImportModal,
    FieldLinesError,
    InstitutionModal,
    ProgramModal,
    field_lines,
    parse_field_lines,
    program_definition,
    read_csv_file,
)
from kairan_tui.screens.programs import ProgramsScreen
from kairan_tui.widgets.marks import Check, CheckList
from kairand.api import schema
from kairand.programs import catalogue
from tests.support.tui_helpers import notifications, open_programs, wait_until

SIZE = (80, 24)


async def _open(pilot, app) -> ProgramsScreen:
    screen: ProgramsScreen = await open_programs(pilot, app, lambda s: bool(s.program_rows))
    return screen


def _type(app, **values: str) -> None:
    for selector, value in values.items():
        widget = app.screen.query_one(f"#{selector}")
        if isinstance(widget, TextArea):
            widget.text = value
        else:
            assert isinstance(widget, Input)
            widget.value = value


def _said(app, text: str):
    return lambda: any(text in m for m in notifications(app))


@pytest.mark.req("K1")
async def test_admin_creates_a_program_and_raises_a_consent_version(app_for, fake) -> None:
    app = app_for("tanaka")
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open(pilot, app)
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, ProgramModal))
        _type(app, **{"program-code": "Bousai", "program-name": "防災情報"})
        await pilot.press("ctrl+s")
        problem = app.screen.query_one("#admin-problem")
        await wait_until(pilot, lambda: "コードは" in str(problem.render()))
        _type(
            app,
            **{
                "program-code": "bousai",
                "program-description": "避難情報などをお届けします。",
                "program-purpose": "お住まいの学校区の防災情報をお届けするために使います。",
                "program-completion": "ご登録ありがとうございました。",
            },
        )
        await pilot.press("ctrl+s")
        await wait_until(pilot, _said(app, "「防災情報」を保存しました"))
        saved = fake.call(lambda: fake.state.programs["puts"]["bousai"])
        assert saved["district_question"] == "bousai_district"
        assert saved["annual"]["month"] == 3 and saved["consent_version"] == 1

        # Edit 子ども安全情報 (the row of its name): its own questions are kept, and the
        # ticked re-consent raises the version.
        await wait_until(pilot, lambda: "bousai" in screen.program_rows)
        table = screen.query_one("#programs-table")
        table.move_cursor(row=screen.program_rows.index("kodomo"))  # type: ignore[attr-defined]
        await pilot.press("e")
        await wait_until(pilot, lambda: isinstance(app.screen, ProgramModal))
        app.screen.query_one("#program-reconsent", Check).value = True
        await pilot.press("ctrl+s")
        await wait_until(pilot, _said(app, "「子ども安全情報」を保存しました"))
        kodomo = fake.call(lambda: fake.state.programs["puts"]["kodomo"])
        assert kodomo["consent_version"] == 2
        assert [q["code"] for q in kodomo["questions"]] == ["kodomo_relation"]

        # The default program is edited in the survey screen, not here.
        table.move_cursor(row=0)  # type: ignore[attr-defined]
        await pilot.press("e")
        await wait_until(pilot, _said(app, "アンケート設定の画面"))
        assert isinstance(app.screen, ProgramsScreen)


async def test_admin_adds_an_institution_with_districts_and_head(app_for, fake) -> None:
    app = app_for("tanaka")
    async with app.run_test(size=SIZE) as pilot:
        await _open(pilot, app)
        await pilot.press("i")
        await wait_until(pilot, lambda: isinstance(app.screen, InstitutionModal))
        _type(app, **{"institution-code": "sakura_es", "institution-name": "桜小学校"})
        await pilot.press("ctrl+s")
        problem = app.screen.query_one("#admin-problem")
        await wait_until(pilot, lambda: "担当する学校区" in str(problem.render()))
        chooser = app.screen.query_one("#institution-districts", CheckList)
        chooser.select("sakura")
        chooser.select("wakaba")
        _type(app, **{"institution-staff": "yamada"})
        app.screen.query_one("#institution-head", Check).value = True
        await pilot.press("ctrl+s")
        await wait_until(pilot, _said(app, "「桜小学校」を保存しました"))
        put = fake.call(lambda: fake.state.programs["institution_puts"]["sakura_es"])
        assert put == {
            "name": "桜小学校",
            "kind": "kodomoen",
            "all_districts": False,
            "districts": ["sakura", "wakaba"],
        }
        assert fake.call(lambda: fake.state.programs["staff"]) == [("sakura_es", "yamada", True)]


async def test_admin_imports_districts_from_a_csv_file(app_for, fake, tmp_path: Path) -> None:
    good = tmp_path / "学校区.csv"
    good.write_text(
        "\ufeff" + catalogue.DEMO_DISTRICTS_CSV + "new,新小学校区,しん,kita_jh,北中学校区\n"
    )
    bad = tmp_path / "bad.csv"
    bad.write_text(catalogue.DEMO_DISTRICTS_CSV + "x,名前,かな\n")
    app = app_for("tanaka")
    async with app.run_test(size=SIZE) as pilot:
        await _open(pilot, app)
        await pilot.press("d")
        await wait_until(pilot, lambda: isinstance(app.screen, DistrictImportModal))
        _type(app, **{"districts-path": str(tmp_path / "none.csv")})
        await pilot.press("ctrl+s")
        problem = app.screen.query_one("#admin-problem")
        await wait_until(pilot, lambda: "見つかりません" in str(problem.render()))
        _type(app, **{"districts-path": str(bad)})
        await pilot.press("ctrl+s")
        await wait_until(pilot, _said(app, "13行目"))  # the daemon names the bad line
        assert fake.call(lambda: fake.state.programs["imports"]) == []
        await pilot.press("d")
        await wait_until(pilot, lambda: isinstance(app.screen, DistrictImportModal))
        _type(app, **{"districts-path": str(good)})
        await pilot.press("ctrl+s")
        await wait_until(pilot, _said(app, "追加 1件、更新 11件"))
        imported = fake.call(lambda: fake.state.programs["imports"])
        assert imported[-1][-1] == "new"


async def test_author_creates_a_template_and_others_are_told_who_may(app_for, fake) -> None:
    app = app_for("ito")
    async with app.run_test(size=SIZE) as pilot:
        await _open(pilot, app)
        await pilot.press("n")  # ito is not an administrator
        await wait_until(pilot, _said(app, "権限のある職員"))
        assert isinstance(app.screen, ProgramsScreen)
        await pilot.press("t")
        await wait_until(pilot, lambda: isinstance(app.screen, AlertTemplateModal))
        _type(app, **{"template-name": "熊の出没", "template-title": "熊出没情報"})
        app.screen.query_one(
            "#template-fields", TextArea
        ).text = "日時（日時）\n場所（場所）\n様子\n被害にあった子ども（任意）（子ども）"
        await pilot.press("ctrl+s")
        await wait_until(pilot, _said(app, "「熊の出没」を作成しました"))
        made = fake.call(lambda: fake.state.programs["templates"][-1])
        assert made["status"] == "draft" and made["created_by"] == "ito"
        fields = made["fields"]
        assert [(f["label"], f["kind"], f["required"], f["child"]) for f in fields] == [
            ("日時", "datetime", True, False),
            ("場所", "place", True, False),
            ("様子", "text", True, False),
            ("被害にあった子ども", "text", False, True),
        ]


def test_field_lines_parse_and_round_trip() -> None:
    fields = parse_field_lines("日時 (日時)\n\n場所（場所）（任意）\n")
    assert [(f["code"], f["kind"], f["required"]) for f in fields] == [
        ("f1", "datetime", True),
        ("f2", "place", False),
    ]
    assert "大字" in fields[1]["hint"]
    with pytest.raises(FieldLinesError) as both:
        parse_field_lines("内容\n日時（日時）（場所）")
    assert both.value.line == 2
    with pytest.raises(FieldLinesError):
        parse_field_lines("あ" * 21)
    with pytest.raises(FieldLinesError):
        parse_field_lines("（任意）")
    with pytest.raises(FieldLinesError):
        parse_field_lines("\n\n")
    with pytest.raises(FieldLinesError):
        parse_field_lines("\n".join(f"項目{i}" for i in range(13)))
    lines = "日時（日時）\n子ども（任意）（子ども）"
    out = [schema.TemplateFieldOut(**f) for f in parse_field_lines(lines)]
    assert field_lines(out) == lines


def test_program_definition_keeps_what_the_form_does_not_show() -> None:
    before = catalogue.child_safety().model_dump(mode="json")
    common = dict(name="n", description="d", purpose_notice="p", completion="c")
    same = program_definition(
        "kodomo", before, districts=True, annual=True, reconsent=False, **common
    )
    assert same["questions"] == before["questions"] and same["consent_version"] == 1
    assert same["district_question"] == "kodomo_district" and same["annual"] == before["annual"]
    raised = program_definition(
        "kodomo", before, districts=False, annual=False, reconsent=True, **common
    )
    assert raised["consent_version"] == 2 and raised["district_question"] is None
    assert "annual" not in raised
    new = program_definition("bousai", {}, districts=True, annual=False, reconsent=True, **common)
    assert new["consent_version"] == 1  # a new program starts at version 1


def test_csv_file_errors_are_plain(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="場所を入力"):
        read_csv_file("")
    sjis = tmp_path / "sjis.csv"
    sjis.write_bytes(b"code,name\n" + "朝日".encode("shift_jis"))
    with pytest.raises(ValueError, match="UTF-8"):
        read_csv_file(str(sjis))
    big = tmp_path / "big.csv"
    big.write_bytes(b"x" * 1_000_001)
    with pytest.raises(ValueError, match="大きすぎます"):
        read_csv_file(str(big))

"""配信サービスの管理, from the 配信サービス screen: create or edit a program (raising
its consent version when its purpose notice changed), create an alert template, add or edit a
sending institution (its districts and staff), and import the school districts from a CSV file
on this terminal. The daemon checks everything again and audits it; these dialogs only collect
the input and say plainly what is missing."""

from __future__ import annotations

import asyncio
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static, TextArea

from kairan_tui.widgets.marks import Check, CheckList
from kairand.api import schema

PROGRAM_CODE = re.compile(r"^[a-z][a-z0-9]{1,15}$")
INSTITUTION_CODE = re.compile(r"^[a-z0-9_]{1,32}$")
MAX_CSV_BYTES = 1_000_000

CSS = """
.admin-dialog { width: 76; max-width: 95%; height: 95%; max-height: 34; padding: 0 1; }
.admin-dialog VerticalScroll { height: 1fr; }
#districts-dialog { height: auto; }
.admin-dialog TextArea { height: 4; }
.admin-dialog Input, .admin-dialog Select { margin-bottom: 1; }
.admin-dialog Label { color: $text-muted; }
.admin-dialog CheckList { height: 6; }
.admin-dialog .dialog-title { margin-bottom: 0; }
.admin-dialog .dialog-buttons { margin-top: 0; }
.admin-problem { color: $error; height: auto; }
"""


class _AdminModal(ModalScreen[Any]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "やめる"),
        Binding("ctrl+s", "save", "保存"),
    ]
    DEFAULT_CSS = CSS

    def buttons(self, save_label: str = "保存する（Ctrl+S）") -> ComposeResult:
        yield Static("", id="admin-problem", classes="admin-problem")
        with Horizontal(classes="dialog-buttons"):
            yield Button("キャンセル", id="cancel")
            yield Button(save_label, id="save", variant="primary")

    def problem(self, text: str) -> None:
        self.query_one("#admin-problem", Static).update(text)

    def value(self, selector: str) -> str:
        return self.query_one(selector, Input).value.strip()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_save(self) -> None:
        raise NotImplementedError

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "save":
            self.action_save()
        else:
            self.dismiss(None)


# -- programs ------------------------------------------------------------------------------


def program_definition(
    code: str,
    before: dict[str, Any],
    *,
    name: str,
    description: str,
    purpose_notice: str,
    completion: str,
    districts: bool,
    annual: bool,
    reconsent: bool,
) -> dict[str, Any]:
    """The definition to PUT: BEFORE (kept: its questions, annual settings, district title)
    with the form's values; RECONSENT raises the consent version by one."""
    definition = dict(before)
    definition.update(
        name=name, description=description, purpose_notice=purpose_notice, completion=completion
    )
    definition["district_question"] = (
        (before.get("district_question") or f"{code}_district") if districts else None
    )
    if annual:
        definition["annual"] = before.get("annual") or {}
    else:
        definition.pop("annual", None)
    version = int(before.get("consent_version", 1))
    definition["consent_version"] = version + 1 if reconsent and before else version
    return definition


class ProgramModal(_AdminModal):
    """Dismisses with (code, definition) or None."""

    def __init__(self, program: schema.ProgramOut | None = None) -> None:
        super().__init__()
        self.program = program
        self.before: dict[str, Any] = dict(program.definition) if program else {}

    def compose(self) -> ComposeResult:
        d = self.before
        title = "配信サービスを作成します" if self.program is None else "配信サービスを変更します"
        with Vertical(id="program-dialog", classes="dialog admin-dialog"):
            yield Static(title, classes="dialog-title")
            with VerticalScroll():
                yield Label("コード（半角英小文字で始まる英数字、例：bousai）")
                yield Input(
                    compact=True,
                    value=self.program.code if self.program else "",
                    id="program-code",
                    max_length=16,
                    disabled=self.program is not None,
                )
                yield Label("名称（住民に表示され、メニューの言葉にもなります）")
                yield Input(value=d.get("name", ""), id="program-name", max_length=20, compact=True)
                yield Label("説明")
                yield Input(value=d.get("description", ""), id="program-description", compact=True)
                yield Label("利用目的（登録の前に表示し、同意を得ます）")
                yield TextArea(d.get("purpose_notice", ""), id="program-purpose", compact=True)
                yield Label("登録完了の案内")
                yield Input(value=d.get("completion", ""), id="program-completion", compact=True)
                yield Check(
                    "学校区を尋ねる（学校区の一覧から選んでもらいます）",
                    bool(d.get("district_question")) if d else True,
                    id="program-districts",
                )
                yield Check(
                    "年度ごとの登録（3月31日23時59分に登録を削除）",
                    bool(d.get("annual")) if d else True,
                    id="program-annual",
                )
                if self.program is not None:
                    version = int(d.get("consent_version", 1))
                    yield Check(
                        f"利用目的を改めたので同意を取り直す（第{version}版→第{version + 1}版。"
                        "同意し直すまで配信を止め、LINEでお知らせします）",
                        False,
                        id="program-reconsent",
                    )
            yield from self.buttons()

    def on_mount(self) -> None:
        first = "#program-name" if self.program is not None else "#program-code"
        self.query_one(first, Input).focus()

    def action_save(self) -> None:
        code = self.program.code if self.program else self.value("#program-code")
        name = self.value("#program-name")
        purpose = self.query_one("#program-purpose", TextArea).text.strip()
        missing = [
            label
            for label, text in (
                ("名称", name),
                ("説明", self.value("#program-description")),
                ("利用目的", purpose),
                ("登録完了の案内", self.value("#program-completion")),
            )
            if not text
        ]
        if not PROGRAM_CODE.match(code):
            self.problem("コードは半角英小文字で始まる2〜16文字の英数字にしてください。")
            return
        if missing:
            self.problem("「" + "」「".join(missing) + "」を入力してください。")
            return
        reconsent = self.program is not None and self.query_one("#program-reconsent", Check).value
        definition = program_definition(
            code,
            self.before,
            name=name,
            description=self.value("#program-description"),
            purpose_notice=purpose,
            completion=self.value("#program-completion"),
            districts=self.query_one("#program-districts", Check).value,
            annual=self.query_one("#program-annual", Check).value,
            reconsent=reconsent,
        )
        self.dismiss((code, definition))


# -- alert templates -------------------------------------------------------------------------

MARKS = {"任意": "optional", "日時": "datetime", "場所": "place", "子ども": "child"}
_MARK = re.compile(r"[（(]\s*(任意|日時|場所|子ども)\s*[)）]\s*$")
PLACE_HINT = "大字・町名まで（番地や丁目は書かないでください）"
CHILD_HINT = "保護者の同意がある場合のみ"


class FieldLinesError(ValueError):
    def __init__(self, line: int, message_ja: str) -> None:
        super().__init__(f"line {line}")
        self.line = line
        self.message_ja = message_ja


def parse_field_lines(text: str) -> list[dict[str, Any]]:
    """One template field per line: its label, then any of （任意）（日時）（場所）（子ども）.
    Codes are f1, f2, … in order (the sender fills them by label)."""
    fields: list[dict[str, Any]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = unicodedata.normalize("NFKC", raw).strip()
        if not line:
            continue
        marks: set[str] = set()
        while (m := _MARK.search(line)) is not None:
            marks.add(MARKS[m.group(1)])
            line = line[: m.start()].strip()
        if not line:
            raise FieldLinesError(number, "項目名がありません。")
        if len(line) > 20:
            raise FieldLinesError(number, "項目名は20文字以内にしてください。")
        if {"datetime", "place"} <= marks:
            raise FieldLinesError(number, "（日時）と（場所）は同時に指定できません。")
        kind = "datetime" if "datetime" in marks else "place" if "place" in marks else "text"
        field: dict[str, Any] = {
            "code": f"f{len(fields) + 1}",
            "label": line,
            "kind": kind,
            "required": "optional" not in marks,
            "max_length": {"datetime": 40, "place": 60}.get(kind, 300),
            "child": "child" in marks,
            "hint": PLACE_HINT if kind == "place" else CHILD_HINT if "child" in marks else "",
        }
        fields.append(field)
    if not fields:
        raise FieldLinesError(1, "項目を1つ以上入力してください。")
    if len(fields) > 12:
        raise FieldLinesError(13, "項目は12個までです。")
    return fields


def field_lines(fields: list[schema.TemplateFieldOut]) -> str:
    """The lines of an existing template's fields (to start a new one from it)."""
    out = []
    for f in fields:
        marks = {"datetime": "（日時）", "place": "（場所）"}.get(f.kind, "")
        marks += "" if f.required else "（任意）"
        marks += "（子ども）" if f.child else ""
        out.append(f.label + marks)
    return "\n".join(out)


STANDARD_FIELDS = (
    "日時（日時）\n場所（場所）\n内容\n特徴（任意）\n被害にあった子ども（任意）（子ども）\n注意事項"
)


class AlertTemplateModal(_AdminModal):
    """Dismisses with a schema.AlertTemplateCreate or None. With ORIGINAL, a revision (修正案)
    of that template: prefilled from it, in its program, naming it in `replaces`."""

    def __init__(
        self, programs: list[tuple[str, str]], original: schema.AlertTemplateOut | None = None
    ) -> None:
        super().__init__()
        self.original = original
        self.programs = (
            [p for p in programs if p[0] == original.program]
            or [(original.program, original.program)]
            if original is not None
            else programs
        )

    def compose(self) -> ComposeResult:
        o = self.original
        heading = (
            f"「{o.name}」（No.{o.id}）の修正案を作成します（承認されると元のテンプレートと置き換わります）"
            if o is not None
            else "緊急配信テンプレートを作成します（承認後に使えます）"
        )
        with Vertical(id="template-dialog", classes="dialog admin-dialog"):
            yield Static(heading, classes="dialog-title")
            with VerticalScroll():
                yield Label("配信サービス")
                yield Select[str](
                    [(name, code) for code, name in self.programs],
                    compact=True,
                    value=self.programs[0][0],
                    allow_blank=False,
                    disabled=o is not None,
                    id="template-program",
                )
                yield Label("テンプレート名（例：熊の出没）")
                yield Input(o.name if o else "", id="template-name", max_length=40, compact=True)
                yield Label("見出し（【】で囲んで先頭に表示）")
                yield Input(o.title if o else "", id="template-title", max_length=40, compact=True)
                yield Label("項目（1行に1つ）")
                yield Static(
                    "末尾に（任意）（日時）（場所）（子ども）を付けられます。"
                    "（子ども）の項目は保護者の同意を記録したときだけ記入できます。",
                    classes="dialog-hint",
                )
                yield TextArea(
                    field_lines(o.fields) if o else STANDARD_FIELDS,
                    id="template-fields",
                    compact=True,
                )
                yield Label("末尾の文（任意）")
                yield Input(
                    o.footer if o else "", id="template-footer", max_length=500, compact=True
                )
            yield from self.buttons("修正案を保存する（Ctrl+S）" if o else "保存する（Ctrl+S）")

    def on_mount(self) -> None:
        self.query_one("#template-name", Input).focus()

    def action_save(self) -> None:
        name, title = self.value("#template-name"), self.value("#template-title")
        if not name or not title:
            self.problem("テンプレート名と見出しを入力してください。")
            return
        try:
            fields = parse_field_lines(self.query_one("#template-fields", TextArea).text)
        except FieldLinesError as exc:
            self.problem(f"項目の{exc.line}行目：{exc.message_ja}")
            return
        if self.original is not None:
            fields = keep_field_details(fields, self.original.fields)
        program = str(self.query_one("#template-program", Select).value)
        definition = {"title": title, "fields": fields, "footer": self.value("#template-footer")}
        self.dismiss(
            schema.AlertTemplateCreate(
                program=program,
                name=name,
                definition=definition,
                replaces=self.original.id if self.original else None,
            )
        )


def keep_field_details(
    fields: list[dict[str, Any]], before: list[schema.TemplateFieldOut]
) -> list[dict[str, Any]]:
    """A revised field with the label and kind it had keeps its length limit and its hint (the
    lines show neither); a new or changed field gets the defaults."""
    old = {(f.label, f.kind): f for f in before}
    out = []
    for f in fields:
        match = old.get((f["label"], f["kind"]))
        if match is not None and match.child == f["child"]:
            f = {**f, "max_length": match.max_length, "hint": match.hint}
        out.append(f)
    return out


# -- institutions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class InstitutionEdit:
    code: str
    body: schema.InstitutionPut
    staff: schema.InstitutionStaff | None


class InstitutionModal(_AdminModal):
    """Dismisses with an InstitutionEdit or None."""

    def __init__(
        self,
        districts: list[schema.DistrictOut],
        institution: schema.InstitutionOut | None = None,
    ) -> None:
        super().__init__()
        self.districts = districts
        self.institution = institution

    def compose(self) -> ComposeResult:
        i = self.institution
        title = "発信元を追加します" if i is None else f"発信元「{i.name}」を変更します"
        covered = set(i.districts) if i else set()
        with Vertical(id="institution-dialog", classes="dialog admin-dialog"):
            yield Static(title, classes="dialog-title")
            with VerticalScroll():
                yield Label("コード（半角英小文字・数字・_、例：tanpopo）")
                yield Input(
                    compact=True,
                    value=i.code if i else "",
                    id="institution-code",
                    max_length=32,
                    disabled=i is not None,
                )
                yield Label("名称（例：たんぽぽこども園）")
                yield Input(
                    value=i.name if i else "", id="institution-name", max_length=40, compact=True
                )
                yield Label("種別")
                yield Select[str](
                    [(label, kind) for kind, label in schema.INSTITUTION_KIND_LABELS.items()],
                    compact=True,
                    value=i.kind if i else "kodomoen",
                    allow_blank=False,
                    id="institution-kind",
                )
                yield Check(
                    "すべての学校区を担当（教育委員会など）",
                    i.all_districts if i else False,
                    id="institution-all",
                )
                yield Label("担当する学校区（スペースで選択）")
                yield CheckList(
                    *[
                        (f"{d.name}（{d.junior_high_name}）", d.code, d.code in covered)
                        for d in self.districts
                    ],
                    id="institution-districts",
                )
                yield Label("職員を加える（任意：OSのユーザー名）")
                yield Input(
                    id="institution-staff", max_length=64, placeholder="例：yamada", compact=True
                )
                yield Check("この職員は園長・校長（緊急配信をすぐ知らせます）", False,
                            id="institution-head")  # fmt: skip
            yield from self.buttons()

    def on_mount(self) -> None:
        first = "#institution-name" if self.institution is not None else "#institution-code"
        self.query_one(first, Input).focus()

    def action_save(self) -> None:
        code = self.institution.code if self.institution else self.value("#institution-code")
        name = self.value("#institution-name")
        everything = self.query_one("#institution-all", Check).value
        chosen = list(self.query_one("#institution-districts", CheckList).selected)
        if not INSTITUTION_CODE.match(code):
            self.problem("コードは半角英小文字・数字・_ の32文字以内にしてください。")
            return
        if not name:
            self.problem("名称を入力してください。")
            return
        if not everything and not chosen:
            self.problem("担当する学校区を選ぶか、「すべての学校区を担当」にしてください。")
            return
        body = schema.InstitutionPut(
            name=name,
            kind=str(self.query_one("#institution-kind", Select).value),  # type: ignore[arg-type]
            all_districts=everything,
            districts=[] if everything else chosen,
        )
        username = self.value("#institution-staff")
        staff = (
            schema.InstitutionStaff(
                username=username, head=self.query_one("#institution-head", Check).value
            )
            if username
            else None
        )
        self.dismiss(InstitutionEdit(code, body, staff))


# -- districts CSV -------------------------------------------------------------------------


def read_csv_file(path_text: str) -> str:
    """The CSV file's text (UTF-8, with or without BOM); ValueError with a message for staff."""
    if not path_text:
        raise ValueError("ファイルの場所を入力してください。")
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise ValueError("ファイルが見つかりません。場所を確かめてください。")
    if path.stat().st_size > MAX_CSV_BYTES:
        raise ValueError("ファイルが大きすぎます（1MBまで）。")
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError(
            "文字コードがUTF-8ではありません。表計算ソフトで「CSV UTF-8」として保存してください。"
        ) from None
    except OSError:
        raise ValueError("ファイルを読み取れません。") from None


class DistrictImportModal(_AdminModal):
    """Dismisses with the CSV text or None; the daemon imports all or nothing."""

    def compose(self) -> ComposeResult:
        with Vertical(id="districts-dialog", classes="dialog admin-dialog"):
            yield Static("学校区の一覧をCSVファイルから取り込みます", classes="dialog-title")
            yield Static(
                "1行目は code,name,kana,junior_high,junior_high_name としてください。"
                "取り込みはすべての行が正しいときだけ行われ、誤りがあれば行番号をお知らせします。"
                "一覧にない学校区は使われなくなります（登録は残ります）。",
                classes="dialog-body",
            )
            yield Label("CSVファイルの場所（この端末上のファイル）")
            yield Input(id="districts-path", placeholder="例：/media/usb/学校区.csv", compact=True)
            yield from self.buttons("取り込む（Ctrl+S）")

    def on_mount(self) -> None:
        self.query_one("#districts-path", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_save()

    def action_save(self) -> None:
        self.read(self.value("#districts-path"))

    @work(exit_on_error=False, exclusive=True, group="districts-read")
    async def read(self, path_text: str) -> None:
        try:  # file I/O off the event loop (a USB stick may be slow)
            text = await asyncio.to_thread(read_csv_file, path_text)
        except ValueError as exc:
            self.problem(str(exc))
            return
        self.dismiss(text)

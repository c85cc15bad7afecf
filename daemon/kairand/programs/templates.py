"""Pre-approved alert templates (緊急配信テンプレート) and filling one in, pure.

An approver approves a template once; an author of an institution then fills it in and sends
it to its districts without a second approver. What keeps that safe is here:

- the text is the template's, with only the fields filled in, each bounded in length;
- G3: the content stays class 1 (公開情報): no field may carry a telephone number, a mail
  address or a URL, and a `place` field stops at the 大字/町名 (no 丁目, 番地, 号, no digits);
- K7: a field marked `child` (it describes a child involved) may only be filled when the author
  records the guardian's consent (who gave it, when); otherwise it is refused with the reason.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kairand.timeutil import JST

FieldKind = Literal["text", "datetime", "place"]
AlertKind = Literal["alert", "correction", "all_clear"]
KIND_LABELS = {"alert": "", "correction": "【訂正】", "all_clear": "【解除】"}
MAX_MESSAGE = 5000


class TemplateField(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    code: Annotated[str, Field(pattern=r"^[a-z0-9_]{1,32}$")]
    label: Annotated[str, Field(min_length=1, max_length=20)]
    kind: FieldKind = "text"
    required: bool = True
    max_length: Annotated[int, Field(ge=1, le=1000)] = 200
    child: bool = False
    """Describes a child involved (K7): needs the guardian's recorded consent."""
    hint: Annotated[str, Field(max_length=200)] = ""


class TemplateDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    title: Annotated[str, Field(min_length=1, max_length=40)]
    """The heading of the message, e.g. 不審者情報 (shown as 【不審者情報】)."""
    fields: Annotated[tuple[TemplateField, ...], Field(min_length=1, max_length=12)]
    footer: Annotated[str, Field(max_length=500)] = ""

    @model_validator(mode="after")
    def _unique(self) -> TemplateDefinition:
        codes = [f.code for f in self.fields]
        if len(set(codes)) != len(codes):
            raise ValueError("field codes must be unique")
        return self


def suspicious_person() -> TemplateDefinition:
    """不審者情報: the template of seed 002's most frequent alert."""
    return TemplateDefinition(
        title="不審者情報",
        fields=(
            TemplateField(code="when", label="日時", kind="datetime", max_length=40),
            TemplateField(
                code="place",
                label="場所",
                kind="place",
                max_length=60,
                hint="大字・町名まで（番地や丁目は書かないでください）",
            ),
            TemplateField(code="what", label="内容", max_length=400),
            TemplateField(code="features", label="特徴", max_length=300, required=False),
            TemplateField(
                code="child",
                label="被害にあった子ども",
                max_length=100,
                required=False,
                child=True,
                hint="保護者の同意がある場合のみ（例：〇〇小学校の児童）",
            ),
            TemplateField(code="advice", label="注意事項", max_length=300),
        ),
        footer="不審な人物を見かけた場合は、すぐに110番通報してください。",
    )


@dataclass(frozen=True)
class GuardianConsent:
    by: str
    """Who consented, as a role (e.g. 被害児童の保護者（母））— never a name is required."""
    at: dt.datetime


class TemplateError(ValueError):
    def __init__(self, code: str, field: str, message_ja: str) -> None:
        super().__init__(f"{code} at {field}")
        self.code = code
        self.field = field
        self.message_ja = message_ja


_PHONE = re.compile(r"\d{2,4}-?\d{2,4}-?\d{3,4}")
_MAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
_URL = re.compile(r"https?://|www\.", re.IGNORECASE)
_ADDRESS = re.compile(r"[0-9一二三四五六七八九十百〇]+\s*(丁目|番地|番|号)|丁目|番地")
_DIGIT = re.compile(r"[0-9]")


def _normal(value: str) -> str:
    return unicodedata.normalize("NFKC", value).strip()


def check_fill(
    template: TemplateDefinition,
    values: Mapping[str, str],
    consent: GuardianConsent | None,
    now: dt.datetime,
) -> dict[str, str]:
    """The normalised field values, or TemplateError naming the first refused field."""
    known = {f.code for f in template.fields}
    for code in values:
        if code not in known:
            raise TemplateError("unknown_field", f"values.{code}", "テンプレートにない項目です。")
    out: dict[str, str] = {}
    for f in template.fields:
        value = _normal(values.get(f.code, ""))
        where = f"values.{f.code}"
        if not value:
            if f.required:
                raise TemplateError("required", where, f"「{f.label}」を入力してください。")
            continue
        if len(value) > f.max_length:
            raise TemplateError(
                "too_long", where, f"「{f.label}」は{f.max_length}文字以内で入力してください。"
            )
        if _MAIL.search(value) or _URL.search(value) or _PHONE.search(value):
            raise TemplateError(
                "not_class1",
                where,
                f"「{f.label}」に電話番号・メールアドレス・URLは書けません"
                "（LINEで送れるのは公開できる情報のみです）。",
            )
        if f.kind == "place" and (_ADDRESS.search(value) or _DIGIT.search(value)):
            raise TemplateError(
                "address",
                where,
                f"「{f.label}」は大字・町名までにしてください（番地・丁目・号や数字は書けません）。",
            )
        if f.child:
            if consent is None or not consent.by.strip():
                raise TemplateError(
                    "guardian_consent_required",
                    where,
                    f"「{f.label}」は子どもに関する情報のため、保護者の同意（誰から・いつ）を"
                    "記録しないと入力できません。",
                )
            if consent.at > now:
                raise TemplateError(
                    "guardian_consent_future",
                    "consent.at",
                    "保護者の同意日時が未来になっています。",
                )
        out[f.code] = value
    return out


def render(
    template: TemplateDefinition,
    values: Mapping[str, str],
    sender_name: str,
    kind: AlertKind = "alert",
    note: str = "",
) -> str:
    """The message text: heading, the filled fields in template order, footer, sender."""
    lines = [f"{KIND_LABELS[kind]}【{template.title}】"]
    if note:
        lines.append(note)
    for f in template.fields:
        if f.code in values:
            lines.append(f"■{f.label}\n{values[f.code]}")
    if template.footer and kind != "all_clear":
        lines.append(template.footer)
    lines.append(f"（発信元：{sender_name}）")
    text = "\n".join(lines)
    if len(text) > MAX_MESSAGE:
        raise TemplateError("too_long", "values", "本文が長すぎます。各項目を短くしてください。")
    return text


def follow_up_text(
    kind: AlertKind, title: str, original_at: dt.datetime, body: str, sender_name: str
) -> str:
    """A correction / all-clear (訂正・解除) of an alert sent at ORIGINAL_AT."""
    at = original_at.astimezone(JST)
    head = f"{KIND_LABELS[kind]}【{title}】"
    lead = f"{at.month}月{at.day}日{at.hour}時{at.minute:02d}分にお送りした{title}について"
    lead += "、内容を訂正します。" if kind == "correction" else "、お知らせします。"
    text = f"{head}\n{lead}\n{_normal(body)}\n（発信元：{sender_name}）"
    if _MAIL.search(body) or _URL.search(body) or _PHONE.search(_normal(body)):
        raise TemplateError(
            "not_class1", "body", "電話番号・メールアドレス・URLは書けません（公開情報のみ）。"
        )
    if len(text) > MAX_MESSAGE:
        raise TemplateError("too_long", "body", "本文が長すぎます。")
    return text


# -- revising and withdrawing templates ------------------------------------------------------
#
# A template is never edited in place: an approved text is what authors were allowed to send.
# A fix is a new draft that `replaces` it (same program); the original stays usable until the
# revision is approved by an approver other than its writer, and that approval retires the
# original in the same transaction. A template can also be withdrawn (取り下げ): it can no longer
# be filled in, and a pending revision of it goes with it.

CONFLICTS = frozenset({"replaces_retired", "revision_open", "already_retired"})
"""Refusals that are about the template's state (HTTP 409), not about the input."""


@dataclass(frozen=True)
class TemplateState:
    id: int
    program: str
    status: str
    """draft, approved or retired."""
    replaces: int | None = None


def check_revision(original: TemplateState | None, program: str, open_revision: int | None) -> None:
    """May a new draft of PROGRAM replace ORIGINAL, whose open revision (a draft) is
    OPEN_REVISION? Raises TemplateError with the reason."""
    if original is None:
        raise TemplateError(
            "replaces_unknown", "replaces", "修正するテンプレートが見つかりません。"
        )
    if original.status == "retired":
        raise TemplateError(
            "replaces_retired",
            "replaces",
            "取り下げたテンプレートは修正できません。新しいテンプレートとして作成してください。",
        )
    if original.program != program:
        raise TemplateError(
            "replaces_other_program",
            "program",
            "修正案は元のテンプレートと同じ配信サービスで作成してください。",
        )
    if open_revision is not None:
        raise TemplateError(
            "revision_open",
            "replaces",
            f"このテンプレートには承認待ちの修正案（No.{open_revision}）があります。"
            "その修正案を承認するか取り下げてから、あらためて修正してください。",
        )


def superseded(approved: TemplateState, lookup: Callable[[int], TemplateState | None]) -> list[int]:
    """What approving the revision APPROVED retires: the template it replaces and, when that
    was itself an unapproved revision, the one before it, and so on (not those retired yet)."""
    out: list[int] = []
    seen = {approved.id}
    current = approved.replaces
    while current is not None and current not in seen:
        seen.add(current)
        state = lookup(current)
        if state is None:
            break
        if state.status != "retired":
            out.append(state.id)
        current = state.replaces
    return out


def withdrawn_with(template_id: int, revision_of: Callable[[int], int | None]) -> list[int]:
    """The open revisions that go when TEMPLATE_ID is withdrawn (a revision of a revision too);
    REVISION_OF gives a template's open revision."""
    out: list[int] = []
    current = revision_of(template_id)
    while current is not None and current not in out and current != template_id:
        out.append(current)
        current = revision_of(current)
    return out

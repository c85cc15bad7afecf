"""application/problem+json answers: stable `type` URIs, Japanese title/detail for staff."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from pydantic import ValidationError

PREFIX = "urn:kairan:problem:"
CONTENT_TYPE = "application/problem+json"

TITLES: dict[str, tuple[int, str]] = {
    "bad-request": (400, "リクエストの形式が正しくありません"),
    "validation": (422, "入力内容に誤りがあります"),
    "forbidden": (403, "この操作を行う権限がありません"),
    "four-eyes": (403, "作成者ご本人はこの配信を承認できません"),
    "not-found": (404, "見つかりません"),
    "method-not-allowed": (405, "この操作はできません"),
    "conflict": (409, "現在の状態ではこの操作はできません"),
    "payload-too-large": (413, "送信内容が大きすぎます"),
    "unsupported-media-type": (415, "JSON形式で送信してください"),
    "request-timeout": (408, "送信に時間がかかりすぎました"),
    "too-many-connections": (503, "同時接続数の上限に達しています"),
    "line-unavailable": (503, "LINEに接続できません"),
    "internal": (500, "システムエラーが発生しました"),
}


class ApiProblem(Exception):
    """Raised by handlers; the middleware turns it into a problem+json response."""

    def __init__(
        self,
        kind: str,
        detail: str = "",
        *,
        field: str | None = None,
        code: str | None = None,
        status: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        if kind not in TITLES:
            raise ValueError(f"unknown problem kind {kind!r}")
        super().__init__(kind)
        self.kind = kind
        self.status = status or TITLES[kind][0]
        self.detail = detail
        self.field = field
        self.code = code
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": PREFIX + self.kind,
            "title": TITLES[self.kind][1],
            "status": self.status,
            "detail": self.detail,
        }
        if self.field is not None:
            out["field"] = self.field
        if self.code is not None:
            out["code"] = self.code
        out.update(self.extra)
        return out

    def response(self) -> web.Response:
        return web.Response(
            status=self.status,
            text=json.dumps(self.body(), ensure_ascii=False),
            content_type=CONTENT_TYPE,
        )


# pydantic error type -> what staff read. Anything else gets the generic sentence.
_JA = {
    "extra_forbidden": "この項目は指定できません。",
    "missing": "必須の項目が指定されていません。",
    "string_too_short": "文字数が足りません。",
    "string_too_long": "文字数が上限を超えています。",
    "too_short": "項目の数が足りません。",
    "too_long": "項目の数が上限を超えています。",
    "string_type": "文字列で指定してください。",
    "int_type": "整数で指定してください。",
    "int_parsing": "整数で指定してください。",
    "bool_type": "true または false で指定してください。",
    "bool_parsing": "true または false で指定してください。",
    "literal_error": "指定できる値ではありません。",
    "enum": "指定できる値ではありません。",
    "greater_than_equal": "値が小さすぎます。",
    "less_than_equal": "値が大きすぎます。",
    "greater_than": "値が小さすぎます。",
    "less_than": "値が大きすぎます。",
    "string_pattern_mismatch": "使用できない文字が含まれています。",
    "dict_type": "オブジェクト（{}）で指定してください。",
    "model_type": "オブジェクト（{}）で指定してください。",
    "list_type": "配列（[]）で指定してください。",
    "datetime_type": "日時（ISO 8601 形式）で指定してください。",
    "datetime_parsing": "日時（ISO 8601 形式）で指定してください。",
    "datetime_from_date_parsing": "日時（ISO 8601 形式）で指定してください。",
    "value_error": "値が正しくありません。",
    "control_characters": (
        "制御文字（NUL など、画面に表示されない文字）は使えません。"
        "本文に使えるのは改行とタブだけです。コピーした文章の場合は、貼り付け直してください。"
    ),
}
GENERIC_JA = "値が正しくありません。"


def _is_union_tag(part: int | str) -> bool:
    # pydantic names the union member it tried: "ChoiceCondition", "function-after[…]".
    return isinstance(part, str) and (part[:1].isupper() or "[" in part)


def field_path(loc: tuple[int | str, ...]) -> str:
    """The data path staff can act on, without union member names."""
    return ".".join(str(p) for p in loc if not _is_union_tag(p)) or "body"


def _best_union_member(errors: list[Any]) -> list[Any]:
    """A value that matches no member of a union gets errors for every member; keep those of
    the member it came closest to (fewest errors; on a tie, the one whose errors lie deepest:
    an object that matched a card's shape and failed on its title is a card, not a string),
    which is the one the sender meant."""
    counts: dict[tuple[Any, ...], dict[str, int]] = {}
    depths: dict[tuple[Any, ...], dict[str, int]] = {}
    for e in errors:
        loc = tuple(e["loc"])
        for i, part in enumerate(loc):
            if _is_union_tag(part):
                members = counts.setdefault(loc[:i], {})
                members[str(part)] = members.get(str(part), 0) + 1
                deepest = depths.setdefault(loc[:i], {})
                deepest[str(part)] = max(deepest.get(str(part), 0), len(loc))
                break
    best = {}
    for key, members in counts.items():
        deepest = depths[key]
        best[key] = min(members, key=lambda m: (members[m], -deepest[m]))
    kept = []
    for e in errors:
        loc = tuple(e["loc"])
        tag = next((i for i, part in enumerate(loc) if _is_union_tag(part)), None)
        if tag is None or best.get(loc[:tag]) == str(loc[tag]):
            kept.append(e)
    return kept


def from_validation(exc: ValidationError, prefix: str = "") -> ApiProblem:
    errors = _best_union_member(
        exc.errors(include_url=False, include_input=False, include_context=False)
    )
    listed = [
        {
            "field": prefix + field_path(tuple(e["loc"])),
            "type": e["type"],
            "detail": _JA.get(e["type"], GENERIC_JA),
        }
        for e in errors[:20]
    ]
    first = listed[0] if listed else {"field": "body", "detail": GENERIC_JA}
    return ApiProblem(
        "validation",
        f"{first['field']}: {first['detail']}",
        field=first["field"],
        extra={"errors": listed},
    )

"""Sending institutions and the districts they may address (K8), pure.

Staff belong to institutions (こども園, 幼稚園, 保育園, 学校, 教育委員会, 関係機関); an
institution covers school districts. A delivery of a non-default program may only address
districts its author's institutions cover: it must name the program's district question, and
every district it names must be covered. An institution with `all_districts` (the board of
education) may address every district, and the whole program. Deliveries of the default
program (city information) are not restricted here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from kairand.segments.model import ChoiceCondition, SegmentFilter

INSTITUTION_KINDS = {
    "kodomoen": "こども園",
    "kindergarten": "幼稚園",
    "nursery": "保育園",
    "school": "学校",
    "board": "教育委員会",
    "agency": "関係機関",
}


@dataclass(frozen=True)
class Institution:
    code: str
    name: str
    kind: str
    all_districts: bool
    districts: frozenset[str]


@dataclass(frozen=True)
class Scope:
    """What one author may address: the union of their institutions."""

    institutions: tuple[Institution, ...]

    @property
    def all_districts(self) -> bool:
        return any(i.all_districts for i in self.institutions)

    @property
    def districts(self) -> frozenset[str]:
        out: set[str] = set()
        for i in self.institutions:
            out |= i.districts
        return frozenset(out)


class ScopeError(Exception):
    """The author may not address this. `field` is the segment's JSON path, `message_ja` is
    shown to staff, `code` is stable for the API."""

    def __init__(self, code: str, field: str, message_ja: str) -> None:
        super().__init__(f"{code} at {field}")
        self.code = code
        self.field = field
        self.message_ja = message_ja


def check(
    scope: Scope,
    segment: SegmentFilter,
    district_question: str | None,
    default_program: str = "city",
) -> None:
    """Raise ScopeError unless SCOPE may send SEGMENT."""
    if segment.program == default_program:
        return
    if not scope.institutions:
        raise ScopeError(
            "no_institution",
            "segment.program",
            "発信元（園・学校・教育委員会など）に所属していない職員は、この配信サービスで"
            "配信できません。管理者に所属の登録を依頼してください。",
        )
    if scope.all_districts:
        return
    if segment.all_registered or district_question is None:
        raise ScopeError(
            "all_districts_only_board",
            "segment.all_registered",
            "全学校区への配信は教育委員会のみ行えます。担当する学校区を選んでください。",
        )
    found = [
        (i, c)
        for i, c in enumerate(segment.conditions)
        if isinstance(c, ChoiceCondition) and c.question == district_question
    ]
    if not found:
        raise ScopeError(
            "district_required",
            "segment.conditions",
            "配信先の学校区を指定してください（担当する学校区にのみ配信できます）。",
        )
    index, condition = found[0]
    outside = [code for code in condition.any_of if code not in scope.districts]
    if outside:
        raise ScopeError(
            "district_out_of_scope",
            f"segment.conditions[{index}].any_of",
            "担当外の学校区が含まれています（"
            + "、".join(outside[:5])
            + "）。所属する発信元が担当する学校区にのみ配信できます。",
        )


def scope_of(institutions: Iterable[Institution]) -> Scope:
    return Scope(tuple(institutions))

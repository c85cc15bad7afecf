"""Program operations (the shell around kairand.programs' pure cores): programs, districts,
institutions, alert templates and sending alerts. Every change writes an audit entry in the
same transaction as the change (S8). Rules are enforced here, not in the HTTP handlers: the
API, kairanctl, the demo and the tests all come through these functions.

An alert sent from an approved template becomes a delivery (program segment, urgent, class 1)
that is approved at once by the template's approval ("template:<id>"): it needs no second
person, and the sender takes urgent deliveries before any other.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kairand.audit.chain import AuditEntry
from kairand.conversation.survey import SurveyDefinition
from kairand.logs import get_logger
from kairand.programs import scope as scope_rules
from kairand.programs import templates as tpl
from kairand.programs.model import (
    DEFAULT_PROGRAM,
    District,
    ProgramDefinition,
    check_codes,
    parse_districts_csv,
    program_survey,
)
from kairand.segments.model import SegmentError, SegmentFilter, validate_against
from kairand.store import audit as audit_store
from kairand.store import deliveries as delivery_store
from kairand.store import mail_programs
from kairand.store import programs as q
from kairand.store import staff as staff_store
from kairand.store import survey as survey_store
from kairand.store.database import Connection, Store

log = get_logger(__name__)


class ProgramError(Exception):
    """A refused program operation: `code` is stable (API), `field` the JSON path, and
    `message_ja` is shown to staff."""

    def __init__(self, code: str, message_ja: str, field: str | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.message_ja = message_ja
        self.field = field


def _audit(
    conn: Connection, actor: str, action: str, target: str, outcome: str = "ok", **detail: Any
) -> None:
    audit_store.append(
        conn, AuditEntry(int(time.time() * 1000), actor, action, outcome, target, detail)
    )


# -- lookups used by the delivery service and the segment routes ------------------------------


def definition_of(conn: Connection, code: str) -> ProgramDefinition | None:
    row = q.get_program(conn, code)
    if row is None or row.is_default:
        return None
    return ProgramDefinition.model_validate(row.definition)


def districts_of(conn: Connection) -> list[District]:
    return [District(*d) for d in q.districts(conn)]


def survey_for(conn: Connection, program: str) -> SurveyDefinition | None:
    """The questions a segment of PROGRAM is validated against (None: no such program)."""
    if program == DEFAULT_PROGRAM:
        current = survey_store.current(conn)
        return current[1] if current else None
    definition = definition_of(conn, program)
    if definition is None:
        return None
    return program_survey(definition, districts_of(conn))


def scope_of(conn: Connection, username: str) -> scope_rules.Scope:
    return scope_rules.scope_of(
        scope_rules.Institution(code, name, kind, all_d, ds)
        for code, name, kind, all_d, ds in q.institutions_of(conn, username)
    )


def check_segment(conn: Connection, author: str, segment: SegmentFilter) -> None:
    """For the delivery service: the program exists, the filter fits its questions, and AUTHOR
    may address it (K8). Raises ProgramError, SegmentError or scope_rules.ScopeError."""
    if segment.program == DEFAULT_PROGRAM:
        return
    definition = definition_of(conn, segment.program)
    if definition is None:
        raise ProgramError(
            "unknown_program", "指定された配信サービスはありません。", "segment.program"
        )
    validate_against(segment, program_survey(definition, districts_of(conn)))
    scope_rules.check(scope_of(conn, author), segment, definition.district_question)


# -- programs and districts --------------------------------------------------------------------


async def put_program(store: Store, actor: str, code: str, definition: ProgramDefinition) -> bool:
    if code == DEFAULT_PROGRAM:
        raise ProgramError(
            "default_program",
            "市政情報（既定の配信サービス）はアンケート画面で編集します。",
            "id",
        )
    try:
        check_codes(code, definition)
    except ValueError as exc:
        raise ProgramError(
            "invalid_program", f"質問コードが正しくありません：{exc}", "definition.questions"
        ) from None

    def tx(conn: Connection) -> bool:
        before = definition_of(conn, code)
        if before is not None and definition.consent_version < before.consent_version:
            raise ProgramError(
                "consent_version_lowered",
                "同意の版は下げられません（利用目的を改めたときは版を上げてください）。",
                "definition.consent_version",
            )
        created = q.put_program(
            conn, code, definition.name, definition.model_dump_json(), int(time.time())
        )
        # A raised consent version: members who agreed only to the older notice receive
        # nothing until they agree again (they are prompted once in LINE,
        # kairand.programs.consent, or by mail, kairand.mail.notices).
        raised = before is not None and definition.consent_version > before.consent_version
        suspended = (
            q.suspend_outdated_members(conn, code, definition.consent_version) if raised else 0
        )
        suspended_mail = (
            mail_programs.suspend_outdated(conn, code, definition.consent_version) if raised else 0
        )
        _audit(
            conn,
            actor,
            "program.put",
            f"program {code}",
            created=created,
            consent_version=definition.consent_version,
            suspended=suspended,
            suspended_mail=suspended_mail,
        )
        return created

    return await store.write(tx)


async def import_districts(store: Store, actor: str, csv_text: str) -> dict[str, int]:
    """Replace the district list from CSV (all or nothing; model.DistrictCsvError on a bad
    line, nothing changed)."""
    parsed = parse_districts_csv(csv_text)

    def tx(conn: Connection) -> dict[str, int]:
        counts = q.replace_districts(
            conn, [(d.code, d.name, d.kana, d.junior_high, d.junior_high_name) for d in parsed]
        )
        _audit(conn, actor, "program.districts_import", "school_districts", "ok", **counts)
        return counts

    return await store.write(tx)


async def put_institution(
    store: Store,
    actor: str,
    code: str,
    name: str,
    kind: str,
    all_districts: bool,
    district_codes: Sequence[str],
) -> None:
    if kind not in scope_rules.INSTITUTION_KINDS:
        raise ProgramError("invalid_kind", "発信元の種別が正しくありません。", "kind")
    if all_districts and district_codes:
        raise ProgramError(
            "invalid_districts", "全学校区を担当する発信元に学校区は指定できません。", "districts"
        )

    def tx(conn: Connection) -> None:
        unknown = q.unknown_districts(conn, district_codes)
        if unknown:
            raise ProgramError(
                "unknown_district",
                f"登録されていない学校区です：{'、'.join(unknown[:5])}",
                "districts",
            )
        q.put_institution(conn, code, name, kind, all_districts, district_codes, int(time.time()))
        _audit(
            conn,
            actor,
            "program.institution_put",
            f"institution {code}",
            kind=kind,
            all_districts=all_districts,
            districts=sorted(district_codes),
        )

    await store.write(tx)


async def assign_staff(
    store: Store, actor: str, username: str, institution: str, head: bool = False
) -> None:
    def tx(conn: Connection) -> None:
        if staff_store.get(conn, username) is None:
            raise ProgramError("unknown_staff", "職員名簿にない利用者です。", "username")
        if q.institution(conn, institution) is None:
            raise ProgramError("unknown_institution", "登録されていない発信元です。", "institution")
        q.assign_staff(conn, username, institution, head)
        _audit(
            conn, actor, "program.staff_assign", f"institution {institution}",
            username=username, head=head,
        )  # fmt: skip

    await store.write(tx)


# -- templates ---------------------------------------------------------------------------------


def _state(row: q.TemplateRow) -> tpl.TemplateState:
    return tpl.TemplateState(row.id, row.program, row.status, row.replaces)


def _lookup(conn: Connection) -> Callable[[int], tpl.TemplateState | None]:
    def lookup(template_id: int) -> tpl.TemplateState | None:
        row = q.template(conn, template_id)
        return _state(row) if row else None

    return lookup


async def create_template(
    store: Store,
    actor: str,
    program: str,
    name: str,
    definition: tpl.TemplateDefinition,
    replaces: int | None = None,
) -> int:
    """A new draft; with REPLACES, a revision of that template (same program, not retired, no
    other open revision), which stays usable until the revision is approved."""

    def tx(conn: Connection) -> int:
        if definition_of(conn, program) is None:
            raise ProgramError("unknown_program", "指定された配信サービスはありません。", "program")
        if replaces is not None:
            original = q.template(conn, replaces)
            tpl.check_revision(
                _state(original) if original else None, program, q.open_revision(conn, replaces)
            )
        tid = q.insert_template(
            conn, program, name, definition.model_dump_json(), actor, int(time.time()), replaces
        )
        _audit(conn, actor, "alert_template.create", f"alert_template {tid}", program=program,
               replaces=replaces)  # fmt: skip
        return tid

    return await store.write(tx)


async def approve_template(store: Store, approver: str, template_id: int) -> list[int]:
    """An approver other than the template's writer approves it (four eyes, once). Approving a
    revision retires the template it replaces in the same transaction; returns what it retired."""

    def tx(conn: Connection) -> list[int]:
        row = q.template(conn, template_id)
        if row is None:
            raise ProgramError("not_found", "テンプレートが見つかりません。")
        if row.status != "draft":
            raise ProgramError("invalid_transition", "このテンプレートは承認待ちではありません。")
        if row.created_by == approver:
            _audit(conn, approver, "alert_template.approve", f"alert_template {template_id}",
                   outcome="denied", four_eyes="refused")  # fmt: skip
            raise ProgramError(
                "self_approval",
                "テンプレートを作成した方とは別の承認者が承認してください（二人による確認）。",
            )
        now = int(time.time())
        q.set_template_status(conn, template_id, "approved", approver, now)
        _audit(conn, approver, "alert_template.approve", f"alert_template {template_id}",
               replaces=row.replaces)  # fmt: skip
        retired = tpl.superseded(_state(row), _lookup(conn))
        for old in retired:
            q.retire_template(conn, old, now)
            _audit(conn, approver, "alert_template.retire", f"alert_template {old}",
                   reason="replaced", replaced_by=template_id)  # fmt: skip
        return retired

    return await store.write(tx)


def _current_version(conn: Connection, template_id: int) -> int | None:
    """The approved template that replaced TEMPLATE_ID, through later revisions; None if it was
    withdrawn without a successor."""
    current, seen = q.replacement_of(conn, template_id), {template_id}
    while current is not None and current not in seen:
        row = q.template(conn, current)
        if row is not None and row.status == "approved":
            return current
        seen.add(current)
        current = q.replacement_of(conn, current)
    return None


async def retire_template(store: Store, actor: str, template_id: int) -> list[int]:
    """Withdraw a template (取り下げ): it can no longer be filled in. An open revision of it is
    withdrawn with it. The audit records the reason as a code (no free text: the log is kept
    for years and cannot be edited). Returns every template retired, TEMPLATE_ID first."""

    def tx(conn: Connection) -> list[int]:
        row = q.template(conn, template_id)
        if row is None:
            raise ProgramError("not_found", "テンプレートが見つかりません。")
        if row.status == "retired":
            raise ProgramError("already_retired", "このテンプレートはすでに取り下げられています。")
        now = int(time.time())
        q.retire_template(conn, template_id, now)
        _audit(conn, actor, "alert_template.retire", f"alert_template {template_id}",
               reason="withdrawn")  # fmt: skip
        revisions = tpl.withdrawn_with(template_id, lambda t: q.open_revision(conn, t))
        for rev in revisions:
            q.retire_template(conn, rev, now)
            _audit(conn, actor, "alert_template.retire", f"alert_template {rev}",
                   reason="original_withdrawn", original=template_id)  # fmt: skip
        return [template_id, *revisions]

    return await store.write(tx)


# -- alerts ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SentAlert:
    delivery_id: int
    text: str
    institution: str
    institution_name: str
    notify: tuple[str, ...]
    """Staff to notify at once: the approvers and the institution's heads."""


def _alert_segment(
    definition: ProgramDefinition, program: str, districts: Sequence[str]
) -> SegmentFilter:
    assert definition.district_question is not None
    return SegmentFilter.model_validate(
        {
            "program": program,
            "conditions": [{"question": definition.district_question, "any_of": list(districts)}],
        }
    )


def _insert_urgent(
    conn: Connection, *, title: str, text: str, segment: SegmentFilter, author: str,
    approver: str, now: int,
) -> int:  # fmt: skip
    delivery_id = delivery_store.insert(
        conn,
        title=title,
        confidentiality=1,
        messages=[text],
        segment_json=segment.model_dump_json(),
        notification_disabled=False,
        urgent=True,
        scheduled_at=None,
        author=author,
        now=now,
    )
    moved = delivery_store.set_status(
        conn, delivery_id, ["draft"], "approved", now,
        submitted_at=now, approved_at=now, approver=approver, quota_confirmed=1,
    )  # fmt: skip
    assert moved
    return delivery_id


def _notify_list(conn: Connection, institution: str) -> tuple[str, ...]:
    approvers = [
        s.username for s in staff_store.all_staff(conn) if s.active and "approver" in s.roles
    ]
    return tuple(sorted({*approvers, *q.heads_of(conn, institution)}))


async def send_alert(
    store: Store,
    author: str,
    template_id: int,
    institution: str,
    districts: Sequence[str],
    values: Mapping[str, str],
    consent: tpl.GuardianConsent | None = None,
    *,
    now: dt.datetime | None = None,
) -> SentAlert:
    """Fill in an approved template and send it to DISTRICTS of INSTITUTION at once (no second
    approver). Refusals raise ProgramError, scope_rules.ScopeError or tpl.TemplateError and
    are audited as denied."""
    at = now or dt.datetime.now(dt.UTC)
    stamp = int(at.timestamp())

    def refuse(conn: Connection, code: str, **detail: Any) -> None:
        _audit(conn, author, "alert.send", f"alert_template {template_id}", outcome="denied",
               reason=code, **detail)  # fmt: skip

    def tx(conn: Connection) -> SentAlert | Exception:
        row = q.template(conn, template_id)
        if row is not None and row.status == "retired":
            refuse(conn, "template_retired")
            newer = _current_version(conn, template_id)
            return ProgramError(
                "template_retired",
                "このテンプレートは取り下げられたため使えません。"
                + (f"修正後のテンプレート（No.{newer}）を使ってください。" if newer else ""),
                "template_id",
            )
        if row is None or row.status != "approved":
            refuse(conn, "template_not_approved")
            return ProgramError(
                "template_not_approved", "承認済みのテンプレートではありません。", "template_id"
            )
        definition = definition_of(conn, row.program)
        inst = q.institution(conn, institution)
        mine = {i[0] for i in q.institutions_of(conn, author)}
        if inst is None or institution not in mine:
            refuse(conn, "not_member")
            return ProgramError(
                "not_member", "所属していない発信元から配信することはできません。", "institution"
            )
        if definition is None or definition.district_question is None:
            refuse(conn, "no_districts")
            return ProgramError(
                "no_districts", "この配信サービスには学校区がありません。", "template_id"
            )
        if not districts:
            refuse(conn, "district_required")
            return ProgramError(
                "district_required", "配信先の学校区を選んでください。", "districts"
            )
        segment = _alert_segment(definition, row.program, sorted(set(districts)))
        try:
            validate_against(segment, program_survey(definition, districts_of(conn)))
            scope_rules.check(
                scope_rules.scope_of([scope_rules.Institution(*inst)]),
                segment,
                definition.district_question,
            )
            template = tpl.TemplateDefinition.model_validate(row.definition)
            filled = tpl.check_fill(template, values, consent, at)
            text = tpl.render(template, filled, inst[1])
        except (SegmentError, scope_rules.ScopeError, tpl.TemplateError) as exc:
            refuse(conn, getattr(exc, "code", "segment"))
            return exc
        delivery_id = _insert_urgent(
            conn, title=f"【緊急】{template.title}", text=text, segment=segment, author=author,
            approver=f"template:{template_id}", now=stamp,
        )  # fmt: skip
        child_filled = any(f.child and f.code in filled for f in template.fields)
        q.insert_alert(
            conn, delivery_id, template_id, institution, sorted(set(districts)), None, "alert",
            (consent.by, int(consent.at.timestamp())) if consent and child_filled else None,
            stamp,
        )  # fmt: skip
        _audit(
            conn, author, "alert.send", f"delivery {delivery_id}",
            template=template_id, institution=institution, districts=sorted(set(districts)),
            guardian_consent=child_filled,
        )  # fmt: skip
        return SentAlert(delivery_id, text, institution, inst[1], _notify_list(conn, institution))

    result = await store.write(tx)
    if isinstance(result, Exception):
        raise result
    return result


async def send_follow_up(
    store: Store,
    approver: str,
    delivery_id: int,
    kind: tpl.AlertKind,
    body: str,
) -> SentAlert:
    """An approver's correction or all-clear (訂正・解除) of a sent alert: same districts,
    urgent, sent at once."""
    if kind not in ("correction", "all_clear"):
        raise ProgramError("invalid_kind", "訂正または解除を選んでください。", "kind")
    stamp = int(time.time())

    def tx(conn: Connection) -> SentAlert:
        original = q.alert(conn, delivery_id)
        delivery = delivery_store.get(conn, delivery_id)
        if original is None or delivery is None or original.kind != "alert":
            raise ProgramError("not_found", "緊急配信が見つかりません。")
        row = q.template(conn, original.template_id)
        inst = q.institution(conn, original.institution)
        assert row is not None and inst is not None
        template = tpl.TemplateDefinition.model_validate(row.definition)
        text = tpl.follow_up_text(
            kind, template.title, dt.datetime.fromtimestamp(original.created_at, dt.UTC), body,
            inst[1],
        )  # fmt: skip
        segment = SegmentFilter.model_validate(delivery.segment)
        new_id = _insert_urgent(
            conn, title=f"{tpl.KIND_LABELS[kind]}{template.title}", text=text, segment=segment,
            author=approver, approver=approver, now=stamp,
        )  # fmt: skip
        q.insert_alert(
            conn, new_id, original.template_id, original.institution, original.districts,
            delivery_id, kind, None, stamp,
        )  # fmt: skip
        _audit(conn, approver, "alert.follow_up", f"delivery {new_id}", follows=delivery_id,
               kind=kind)  # fmt: skip
        return SentAlert(new_id, text, original.institution, inst[1],
                         _notify_list(conn, original.institution))  # fmt: skip

    return await store.write(tx)

"""Applying the program dialogue to the store, inside the inbox worker's per-event savepoint
(kairand.line.inbox calls `apply_event` before the city dialogue and stops there when it
returns replies). Leaving a program deletes its registration with a signed receipt."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kairand.conversation.events import Event
from kairand.programs import dialogue
from kairand.programs.model import ProgramDefinition
from kairand.programs.service import districts_of
from kairand.retention.purge import record_deletion
from kairand.store import programs as q
from kairand.store import residents
from kairand.store.database import Connection


@dataclass(frozen=True)
class Applied:
    replies: tuple[dict[str, Any], ...]
    resident_id: int


def active_programs(conn: Connection) -> dict[str, ProgramDefinition]:
    return {
        row.code: ProgramDefinition.model_validate(row.definition)
        for row in q.list_programs(conn)
        if not row.is_default and row.active
    }


def _member_view(conn: Connection, program: str, resident_id: int) -> dialogue.MemberView | None:
    m = q.member(conn, program, resident_id)
    if m is None:
        return None
    row = q.get_program(conn, program)
    definition = ProgramDefinition.model_validate(row.definition) if row else None
    question = (definition.district_question if definition else None) or ""
    chosen = tuple(q.answer_values(conn, resident_id, question)) if question else ()
    answers = {
        x.code: tuple(q.answer_values(conn, resident_id, x.code))
        for x in (definition.questions if definition else ())
    }
    return dialogue.MemberView(
        m.consent_version, m.registered_at is not None, m.conversation, chosen, answers
    )


def apply_event(
    conn: Connection,
    event: Event,
    user_id: str,
    resident_id: int | None,
    now: int,
    hmac_key: bytes,
    signing_key: Ed25519PrivateKey,
) -> Applied | None:
    """Handle EVENT if it belongs to a program's dialogue; None otherwise."""
    if event.kind not in ("text", "postback"):
        return None
    programs = active_programs(conn)
    if not programs:
        return None
    code = dialogue.claims(event, programs)
    if code is None:
        return None
    if resident_id is None:
        resident_id = residents.start(conn, user_id, now)
    definition = programs[code]
    outcome = dialogue.handle(
        event, code, definition, districts_of(conn), _member_view(conn, code, resident_id)
    )
    for op in outcome.ops:
        if isinstance(op, dialogue.Join):
            q.join(conn, op.program, resident_id, op.consent_version, now)
        elif isinstance(op, dialogue.SetState):
            q.set_member_conversation(conn, op.program, resident_id, dict(op.state))
        elif isinstance(op, dialogue.SetDistricts):
            residents.replace_answer(
                conn, resident_id, op.question, tuple((c, None) for c in op.codes), now
            )
        elif isinstance(op, dialogue.SetAnswer):
            residents.replace_answer(conn, resident_id, op.question, op.values, now)
        elif isinstance(op, dialogue.MarkRegistered):
            q.mark_member_registered(conn, op.program, resident_id, now)
        elif isinstance(op, dialogue.Leave):
            deleted = q.remove_member(conn, op.program, resident_id, definition.question_codes())
            if deleted["membership"]:
                record_deletion(
                    conn,
                    line_user_id=user_id,
                    reason="request",  # the resident asked (deleted names the program)
                    deleted={"program": op.program, **deleted},
                    now=now,
                    hmac_key=hmac_key,
                    signing_key=signing_key,
                    actor="kairand.inbox",
                    action="program.leave",
                    audit_detail={"program": op.program, **deleted},
                )
    residents.touch(conn, resident_id, now)
    return Applied(outcome.replies, resident_id)

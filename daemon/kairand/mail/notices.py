"""Notices by mail to program members (K1, K2, S16), the mail side of what LINE
members get by push:

- the re-consent mail: when staff raise a program's consent version, the mail members who
  agreed only to the older notice are suspended in the same transaction
  (kairand.programs.service.put_program -> kairand.store.mail_programs.suspend_outdated) and
  each gets one mail with the new purpose notice; a reply 「1」 restores the registration with
  its answers, 「2」 leaves the program (answers deleted, receipt recorded) — the member's
  dialogue waits in step "consent" (kairand.mail.programs);
- the March notice: once per annual cycle, at the program's notice time before its boundary,
  each registered member whose registration the boundary will end is told the deadline and how
  to register again (kairand.programs.expiry does the same in LINE and the deletion for both);
- the city's March notice: when the city's retention rules end registrations at an annual
  boundary, each mail subscriber is told once before it, as LINE residents are
  (kairand.retention.worker); the boundary deletes the address (kairand.mail.expiry).

Each is sent at most once per (subscriber, cycle) by MailSender.send_notices (the Message-ID
stored before the relay is contacted). The mail component runs `run_once` at start, every
CHECK_SECONDS and when the staff API sets WAKE (a raised consent version), so a notice not
sent (relay down) is tried again on the next run.
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from kairand.logs import get_logger
from kairand.mail import expiry as mail_expiry
from kairand.mail.programs import reconsent_reply
from kairand.mail.sender import MailNotice, MailSender
from kairand.programs.consent import cycle as consent_cycle
from kairand.programs.model import ProgramDefinition
from kairand.retention import rules as rules_mod
from kairand.store import mail as mail_store
from kairand.store import mail_programs
from kairand.store import programs as program_store
from kairand.store.database import Connection, Store

log = get_logger(__name__)
CHECK_SECONDS = 60.0
WAKE = web.AppKey("mail_notices_wake", asyncio.Event)
"""Set by the staff API when a raised consent version suspended members: the re-consent mails
go at once instead of at the next check."""

ANNUAL_SUBJECT = "【{program}】登録更新のお知らせ"
ANNUAL_BODY = (
    "{program}は年度ごとの登録制です。現在の登録内容（学校区など）は{deadline}に削除されます。\n"
    "{restart}以降も受け取りを希望される場合は、お手数ですが、{restart}以降に"
    "「{program}」と本文に書いてこのメールに返信し、改めてご登録ください。\n"
    "※このお知らせは今年度1回のみお送りしています。\n\n"
    "メール配信そのものを停止する場合は「停止」と返信してください。"
)


CITY_SUBJECT = "【登録内容の更新についてのお知らせ】"
CITY_BODY = (
    "いつもご利用いただき、ありがとうございます。\n"
    "このメール配信の登録内容は年度ごとに更新していただく仕組みとなっており、現在の登録内容"
    "（メールアドレスと回答）は{deadline}に削除されます。\n"
    "{restart}以降も引き続きお知らせの受け取りを希望される場合は、お手数ですが、{restart}以降に"
    "登録用アドレスへ空メールをお送りいただき、改めてご登録くださいますようお願いいたします。\n"
    "※このお知らせは、今年度1回のみお送りしています。\n\n"
    "配信を今すぐ停止する場合は「停止」と返信してください。"
)


def city_cycle(boundary: int) -> str:
    return f"mail@{rules_mod.cycle_name(boundary)}"


def city_body(boundary: int) -> str:
    restart = rules_mod.jst(boundary + 60)
    return CITY_BODY.replace("{deadline}", rules_mod.format_deadline_ja(boundary)).replace(
        "{restart}", f"{restart.month}月{restart.day}日"
    )


def annual_cycle(program: str, boundary: int) -> str:
    """The same cycle name as the LINE notice of that program and boundary."""
    return f"{program}@{rules_mod.cycle_name(boundary)}"


def annual_notice(definition: ProgramDefinition, boundary: int) -> tuple[str, str]:
    restart = rules_mod.jst(boundary + 60)
    fill = {
        "{program}": definition.name,
        "{deadline}": rules_mod.format_deadline_ja(boundary),
        "{restart}": f"{restart.month}月{restart.day}日",
    }
    subject, body = ANNUAL_SUBJECT, ANNUAL_BODY
    for key, value in fill.items():
        subject, body = subject.replace(key, value), body.replace(key, value)
    return subject, body


def due(conn: Connection, now: int) -> list[MailNotice]:
    """Every notice due at NOW and not yet sent (or to retry), in one read."""
    notices: list[MailNotice] = []
    for row in program_store.list_programs(conn):
        if row.is_default or not row.active:
            continue
        definition = ProgramDefinition.model_validate(row.definition)
        if definition.consent_version > 1:
            cycle = consent_cycle(row.code, definition.consent_version)
            reply = reconsent_reply(definition)
            notices += [
                MailNotice(sid, cycle, reply.subject, reply.body)
                for sid in mail_programs.members_to_reconsent(
                    conn, row.code, definition.consent_version, cycle
                )
            ]
        policy = definition.annual
        if policy is not None and policy.notify:
            boundary = rules_mod.next_boundary(policy, now)
            notice_at = rules_mod.notice_time_for(policy, boundary)
            if notice_at <= now:
                cycle = annual_cycle(row.code, boundary)
                subject, body = annual_notice(definition, boundary)
                notices += [
                    MailNotice(sid, cycle, subject, body)
                    for sid in mail_programs.members_for_notice(conn, row.code, notice_at, cycle)
                ]
    city = mail_expiry.registration_policy(conn)
    if city is not None and city.notify:
        boundary = rules_mod.next_boundary(city, now)
        notice_at = rules_mod.notice_time_for(city, boundary)
        if notice_at <= now:
            cycle, body = city_cycle(boundary), city_body(boundary)
            notices += [
                MailNotice(sid, cycle, CITY_SUBJECT, body)
                for sid in mail_store.registered_for_notice(conn, notice_at, cycle)
            ]
    return notices


async def run_once(store: Store, sender: MailSender, now: int | None = None) -> dict[str, int]:
    """Send every notice due now; counts by outcome."""
    at = int(now if now is not None else time.time())
    notices = await store.read(due, at)
    return await sender.send_notices(notices)

"""kairanctl incident | training: the records a council's audit asks for (S19, S21).

kairanctl incident record --kind leak --occurred 2026-05-01T10:00 --summary TEXT
                          [--discovered ...] [--affected TEXT] [--reported-to TEXT]
                          [--reported-at ...] [--measures TEXT] [--prevention TEXT]
kairanctl incident list [--from DATE --to DATE]
kairanctl incident report ID [--output FILE]     the written report (事故報告書), signed
kairanctl training record --date 2026-06-10 --title TEXT --attendee USER [--attendee ...]
                          [--instructor NAME]
kairanctl training list [--from DATE --to DATE]

Texts are written by administrators; the commands remind them never to put a resident's name,
LINE user id or answers in them. Every record is audited with the real person.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

from kairand.ctl.context import Context, Subparsers
from kairand.errors import DataError, ExitCode, UsageError
from kairand.glossary import INCIDENT_KINDS
from kairand.keys import secrets
from kairand.reports.common import date_ja, datetime_ja, parse_period
from kairand.reports.signing import sign_text
from kairand.store import records, staff
from kairand.store.database import Connection
from kairand.timeutil import JST

NO_PERSONAL = "（住民の氏名・LINEユーザーID・回答内容は記入しないでください）"


def _moment(text: str | None, what: str) -> int | None:
    if text is None:
        return None
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"{what} must look like 2026-05-01 or 2026-05-01T10:30 (got {text!r})",
            "Japan time is assumed when no offset is given",
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=JST)
    return int(value.timestamp())


def _cmd_incident_record(ctx: Context) -> int:
    args = ctx.args
    now = int(time.time())
    occurred = _moment(args.occurred, "--occurred")
    assert occurred is not None
    discovered = _moment(args.discovered, "--discovered") or occurred
    if occurred > now or discovered > now:
        raise UsageError("an incident cannot be recorded in the future", "check the dates")
    if not args.summary.strip():
        raise UsageError("--summary must not be empty", "describe what happened " + NO_PERSONAL)
    incident = records.Incident(
        0,
        args.kind,
        occurred,
        discovered,
        args.summary.strip(),
        args.affected or "",
        args.reported_to or "",
        _moment(args.reported_at, "--reported-at"),
        args.measures or "",
        args.prevention or "",
        ctx.operator.user,
        now,
    )
    with ctx.store() as store:

        def write(conn: Connection) -> int:
            new_id = records.add_incident(conn, incident)
            ctx.audit(conn, "incident.record", {"kind": args.kind}, target=f"incident {new_id}")
            return new_id

        new_id = store.write_sync(write)
    print(f"事故を記録しました（番号 {new_id}）。書面の報告書：kairanctl incident report {new_id}")
    return ExitCode.OK


def render_incident_report(incident: records.Incident, contract: Any, issued_at: int) -> str:
    """The written report to the municipality (事故報告書, 特記事項 19: at once and in
    writing). Blank items are printed as 「（未記入）」 so nothing is silently omitted."""

    def value(text: str) -> str:
        return text if text.strip() else "（未記入）"

    reported = datetime_ja(incident.reported_at) if incident.reported_at else "（未報告）"
    lines = [
        "# 個人情報に関する事故報告書",
        "",
        f"{date_ja(dt.datetime.fromtimestamp(issued_at, JST).date())}",
        "",
        f"{contract.addressee or '（宛先未設定）'}",
        "",
        f"（受託者）{contract.contractor or '（未設定）'}",
        f"個人情報取扱責任者　{contract.handling_manager or '（未設定）'}",
        "",
        f"契約件名：{contract.name or '（未設定）'}（契約番号：{contract.number or '（未設定）'}）",
        "",
        "上記契約の特記事項に基づき、個人情報に関する事故について、次のとおり報告します。",
        "",
        "| 項目 | 内容 |",
        "|---|---|",
        f"| 事故番号 | {incident.id} |",
        f"| 事故の種類 | {INCIDENT_KINDS[incident.kind]} |",
        f"| 発生日時 | {datetime_ja(incident.occurred_at)} |",
        f"| 発見日時 | {datetime_ja(incident.discovered_at)} |",
        f"| 事故の概要 | {value(incident.summary)} |",
        f"| 影響の範囲（件数・項目） | {value(incident.affected)} |",
        f"| 報告先 | {value(incident.reported_to)} |",
        f"| 第一報の日時 | {reported} |",
        f"| 発生後の対応 | {value(incident.measures)} |",
        f"| 再発防止策 | {value(incident.prevention)} |",
        f"| 記録者 | {incident.recorded_by}（{datetime_ja(incident.recorded_at)}） |",
        "",
        "以上",
        "",
    ]
    return "\n".join(lines)


def _cmd_incident_report(ctx: Context) -> int:
    args = ctx.args
    config = ctx.keyring()
    with ctx.store() as store:
        found = store.read_sync(records.incident, args.id)
        if found is None:
            raise DataError(f"there is no incident number {args.id}", "see kairanctl incident list")
        text = sign_text(
            render_incident_report(found, config.contract, int(time.time())),
            secrets.signing_key(),
        )
        store.write_sync(
            ctx.audit, "report.issue", {"kind": "incident"}, "ok", f"incident {args.id}"
        )
    ctx.write_output(args.output, text)
    return ExitCode.OK


def _period(args: Any) -> tuple[int, int, str, str]:
    if args.date_from and args.date_to:
        period = parse_period(args.date_from, args.date_to)
        return period.start, period.end, period.first.isoformat(), period.last.isoformat()
    return 0, 2**40, "0000-01-01", "9999-12-31"


def _cmd_incident_list(ctx: Context) -> int:
    start, end, _, _ = _period(ctx.args)
    with ctx.store() as store:
        found = store.read_sync(records.incidents_between, start, end)
    if not found:
        print("記録された事故はありません。")
    for item in found:
        print(
            f"{item.id:>4}  {datetime_ja(item.occurred_at)}  {INCIDENT_KINDS[item.kind]}  "
            f"報告：{datetime_ja(item.reported_at) if item.reported_at else '未報告'}"
        )
    return ExitCode.OK


def _cmd_training_record(ctx: Context) -> int:
    args = ctx.args
    try:
        held = dt.date.fromisoformat(args.date)
    except ValueError:
        raise UsageError(f"--date must look like 2026-06-10 (got {args.date!r})") from None
    if held > dt.datetime.now(JST).date():
        raise UsageError("a training cannot be recorded before it was held", "check --date")
    with ctx.store() as store:
        roster = {s.username for s in store.read_sync(staff.all_staff)}
        unknown = sorted(set(args.attendee) - roster)
        if unknown:
            raise UsageError(
                "not on the staff roster: " + ", ".join(unknown),
                "give staff user names (kairanctl staff list)",
            )
        training = records.Training(
            0,
            held.isoformat(),
            args.title,
            args.instructor or "",
            tuple(sorted(set(args.attendee))),
            ctx.operator.user,
            int(time.time()),
        )

        def write(conn: Connection) -> int:
            new_id = records.add_training(conn, training)
            ctx.audit(
                conn,
                "training.record",
                {"held_on": training.held_on, "attendees": len(training.attendees)},
                target=f"training {new_id}",
            )
            return new_id

        new_id = store.write_sync(write)
    print(f"研修を記録しました（番号 {new_id}、受講者 {len(training.attendees)} 名）。")
    return ExitCode.OK


def _cmd_training_list(ctx: Context) -> int:
    _, _, first, last = _period(ctx.args)
    with ctx.store() as store:
        found = store.read_sync(records.trainings_between, first, last)
    if not found:
        print("記録された研修はありません。")
    for item in found:
        print(f"{item.id:>4}  {item.held_on}  {item.title}  受講者：{'、'.join(item.attendees)}")
    return ExitCode.OK


def register(subparsers: Subparsers) -> None:
    inc = subparsers.add_parser("incident", help="incident records and written reports (S19)")
    inc_sub = inc.add_subparsers(dest="incident_command", required=True)
    rec = inc_sub.add_parser("record", help="record an incident " + NO_PERSONAL)
    rec.add_argument("--kind", required=True, choices=sorted(INCIDENT_KINDS))
    rec.add_argument("--occurred", required=True, help="when it happened (Japan time)")
    rec.add_argument("--discovered", help="when it was found (default: --occurred)")
    rec.add_argument("--summary", required=True, help="what happened")
    rec.add_argument("--affected", help="scope: how many records, which items")
    rec.add_argument("--reported-to", help="to whom it was reported")
    rec.add_argument("--reported-at", help="when it was first reported")
    rec.add_argument("--measures", help="what was done")
    rec.add_argument("--prevention", help="measures against recurrence")
    rec.set_defaults(func=_cmd_incident_record)
    lst = inc_sub.add_parser("list", help="recorded incidents")
    rep = inc_sub.add_parser("report", help="the written incident report (signed Markdown)")
    rep.add_argument("id", type=int)
    rep.add_argument("--output", type=Path, default=None)
    rep.set_defaults(func=_cmd_incident_report)

    tr = subparsers.add_parser("training", help="handler education records (S21)")
    tr_sub = tr.add_subparsers(dest="training_command", required=True)
    trec = tr_sub.add_parser("record", help="record a training session")
    trec.add_argument("--date", required=True, help="YYYY-MM-DD")
    trec.add_argument("--title", required=True)
    trec.add_argument("--instructor")
    trec.add_argument(
        "--attendee", action="append", required=True, help="staff user name (repeatable)"
    )
    trec.set_defaults(func=_cmd_training_record)
    tlst = tr_sub.add_parser("list", help="recorded training sessions")
    for parser, func in ((lst, _cmd_incident_list), (tlst, _cmd_training_list)):
        parser.add_argument("--from", dest="date_from")
        parser.add_argument("--to", dest="date_to")
        parser.set_defaults(func=func)

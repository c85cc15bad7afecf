"""kairanctl certificate | export | report: the documents an administrator hands out.

kairanctl certificate --from 2026-04-01 --to 2027-03-31 [--output DIR]
kairanctl certificate verify FILE [--public-key PEM]
kairanctl certificate public-key [--output FILE]
kairanctl certificate lookup --line-user-id U... | -      (- reads the id from stdin)
kairanctl export stats [--output FILE]
kairanctl export personal --output FILE       (only with privacy.allow_personal_export)
kairanctl report --from DATE --to DATE [--output FILE]
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from pathlib import Path
from typing import Any

from kairand.config import ContractSection
from kairand.ctl.context import Context, Subparsers
from kairand.errors import DataError, ExitCode, KairanError, UsageError
from kairand.evidence import load_public_key_pem, public_key_pem
from kairand.keys import secrets
from kairand.reports import certificate, export, handling, report
from kairand.reports.common import Period
from kairand.reports.signing import verify_document
from kairand.store import reports
from kairand.store import survey as survey_store
from kairand.store.database import Connection
from kairand.timeutil import JST


class PersonalExportDisabledError(KairanError):
    exit_code = ExitCode.FAILURE


# -- certificate ---------------------------------------------------------------------------


def check_certificate_period(period: Period, contract: ContractSection, today: dt.date) -> None:
    """A certificate states what happened: never a period that has not ended yet, never one
    before the contract began."""
    if period.last > today:
        raise UsageError(
            f"the period ends {period.last.isoformat()}, after today ({today.isoformat()}, Japan "
            "time): a certificate cannot state deletions that have not happened",
            "choose --to today or earlier",
        )
    if contract.start is not None and period.first < contract.start:
        raise UsageError(
            f"the period starts {period.first.isoformat()}, before the contract start "
            f"({contract.start.isoformat()})",
            f"choose --from {contract.start.isoformat()} or later",
        )


def _cmd_certificate(ctx: Context) -> int:
    args = ctx.args
    if args.date_from is None or args.date_to is None:
        raise UsageError(
            "certificate needs --from and --to (or a subcommand: verify, public-key, lookup)",
            "e.g. kairanctl certificate --from 2026-04-01 --to 2027-03-31",
        )
    period = ctx.period(args.date_from, args.date_to)
    config = ctx.config
    certificate.missing_contract(config.contract)
    now = int(time.time())
    check_certificate_period(period, config.contract, dt.datetime.fromtimestamp(now, JST).date())
    with ctx.store() as store:
        signing_key = secrets.signing_key()
        public = signing_key.public_key()
        gathered = store.read_sync(certificate.gather, period.start, period.end)
        rows = certificate.receipt_rows(gathered, public)

        def payload_for(annex: dict[str, Any]) -> dict[str, Any]:
            return certificate.build_payload(
                rows,
                period=period,
                issued_at=now,
                public_key=public,
                contract=config.contract,
                audit_chain={
                    "intact": gathered.audit_ok,
                    "entries": gathered.audit_entries,
                    "head_hash": gathered.audit_head,
                },
                annex=annex,
                masked=gathered.masked,
                backup_lifetime_days=config.backup.lifetime_days,
            )

        stem = f"deletion-certificate-{period.first.isoformat()}_{period.last.isoformat()}"
        payload, written = certificate.write_certificate(
            rows, payload_for, signing_key, args.output, stem
        )
        store.write_sync(
            ctx.audit,
            "certificate.issue",
            {
                "from": period.first.isoformat(),
                "to": period.last.isoformat(),
                "receipts": payload["total"],
                "serial": payload["serial"],
            },
        )
    print(f"削除証明書を発行しました（削除記録 {payload['total']} 件）")
    print(f"  印刷用（PDF）: {written.pdf}")
    print(f"  印刷用（文字）: {written.text}")
    print(f"  JSON          : {written.json}")
    print(f"  別紙（CSV）   : {written.annex}")
    return ExitCode.OK


def _public_key(ctx: Context) -> Any:
    args = ctx.args
    if getattr(args, "public_key", None):
        try:
            return load_public_key_pem(Path(args.public_key).read_bytes())
        except (OSError, ValueError) as exc:
            raise DataError(
                f"cannot read the public key {args.public_key}: {exc}",
                "export it with `kairanctl certificate public-key --output FILE`",
            ) from None
    ctx.keyring()
    return secrets.signing_key().public_key()


def _cmd_verify(ctx: Context) -> int:
    args = ctx.args
    try:
        data = Path(args.file).read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {args.file}: {exc}", "check the path") from None
    public = _public_key(ctx)
    result = verify_document(data, public)
    if result.ok:
        problem = _annex_problem(Path(args.file), result.payload, public)
        if problem:
            print(f"検証に失敗しました：{problem} ({args.file})")
            return ExitCode.FAILURE
        print(
            f"検証に成功しました：この文書は本装置の署名鍵で署名され、改変されていません。({args.file})"
        )
        return ExitCode.OK
    print(f"検証に失敗しました：{result.reason} ({args.file})")
    return ExitCode.FAILURE


def _annex_problem(path: Path, payload: dict[str, Any] | None, public: Any) -> str | None:
    """For a certificate: the annex it names must be beside it, unchanged. The text and PDF
    forms carry no parsable payload: their JSON twin (same name) names the annex."""
    if payload is None:
        twin = path.with_suffix(".json")
        if not twin.exists():
            return None
        checked = verify_document(twin.read_bytes(), public)
        if not checked.ok or checked.payload is None:
            return f"対応する JSON 形式 {twin.name} の検証に失敗しました"
        payload = checked.payload
    if payload.get("kind") != certificate.KIND:
        return None
    return certificate.check_annex(path, payload)


def _cmd_public_key(ctx: Context) -> int:
    ctx.keyring()
    pem = public_key_pem(secrets.signing_key().public_key())
    ctx.write_output(ctx.args.output, pem)
    return ExitCode.OK


def _cmd_lookup(ctx: Context) -> int:
    line_user_id = ctx.args.line_user_id
    if line_user_id == "-":
        line_user_id = sys.stdin.readline().strip()
    if not line_user_id.startswith("U") or len(line_user_id) != 33:
        raise UsageError(
            "that does not look like a LINE user id (U followed by 32 hexadecimal characters)",
            "ask the resident for the id shown by the account, or pass - and paste it on stdin",
        )
    with ctx.store() as store:
        hmac_key = secrets.receipt_hmac_key()
        public_key = secrets.signing_key().public_key()
        found = store.read_sync(certificate.lookup, line_user_id, hmac_key, public_key)
        store.write_sync(ctx.audit, "certificate.lookup", {"found": len(found)})
    del line_user_id  # used only for the HMAC above; never stored or printed
    sys.stdout.write(certificate.render_lookup(found))
    return ExitCode.OK


# -- export --------------------------------------------------------------------------------


def _stats(conn: Connection) -> tuple[Any, ...]:
    current = survey_store.current(conn)
    if current is None:
        raise DataError("the store has no survey definition", "run kairand once to seed it")
    _version, definition = current
    years = {
        q.code: reports.year_counts(conn, q.code)
        for q in definition.questions
        if q.kind in ("year", "year_month")
    }
    return (
        definition,
        reports.answer_counts(conn),
        years,
        reports.respondents(conn),
        reports.resident_counts(conn)["registered"],
    )


def _cmd_export_stats(ctx: Context) -> int:
    config = ctx.keyring()
    with ctx.store() as store:
        definition, counts, years, respondents, registered = store.read_sync(_stats)
        cells = export.cells_for(definition, counts, years)
        threshold = config.privacy.small_cell_threshold
        text, rows = export.stats_csv(cells, respondents, registered, threshold)
        store.write_sync(
            ctx.audit, "export.stats", {"rows": rows, "personal": False, "threshold": threshold}
        )
    ctx.write_output(ctx.args.output, text)
    return ExitCode.OK


def _personal(conn: Connection, ctx: Context) -> tuple[str, int]:
    text, rows = export.personal_csv(reports.personal_rows(conn))
    ctx.audit(conn, "export.personal", {"rows": rows, "personal": True})
    return text, rows


def _cmd_export_personal(ctx: Context) -> int:
    config = ctx.keyring()
    with ctx.store() as store:
        if not config.privacy.allow_personal_export:
            store.write_sync(ctx.audit, "export.personal", {"rows": 0, "personal": True}, "denied")
            raise PersonalExportDisabledError(
                "個人データのエクスポートは無効です（privacy.allow_personal_export = false）",
                "個人データの持ち出しには、管理者が設定で明示的に許可する必要があります (K6, S17)",
            )
        text, rows = store.write_sync(_personal, ctx)
    ctx.write_output(ctx.args.output, text)
    print(f"個人データを {rows} 件エクスポートしました（操作ログに記録済み）", file=sys.stderr)
    return ExitCode.OK


# -- report --------------------------------------------------------------------------------


def _cmd_report(ctx: Context) -> int:
    """The handling report as signed Markdown and signed PDF, named by its author."""
    args = ctx.args
    period = ctx.period(args.date_from, args.date_to)
    config = ctx.keyring()
    author = ctx.operator.user
    with ctx.store() as store:
        data = store.read_sync(
            report.gather, period, ctx.config.privacy.reservation_mask_after_months
        )
        roster = {s.username: s.display_name for s in data.roster}
        named = f"{roster[author]}（{author}）" if author in roster else author
        now = int(time.time())
        markdown, document = handling.issue(
            data, period, now, named, config, handling.host_facts(config), secrets.signing_key()
        )
        store.write_sync(
            ctx.audit,
            "report.issue",
            {"from": period.first.isoformat(), "to": period.last.isoformat(), "author": author},
        )
    if args.output is None:
        sys.stdout.write(markdown)
        return ExitCode.OK
    target = args.output
    if target.suffix.lower() not in (".md", ".pdf"):
        target = target / f"handling-report-{period.first.isoformat()}_{period.last.isoformat()}.md"
    ctx.write_output(target.with_suffix(".md"), markdown)
    pdf_path = target.with_suffix(".pdf")
    fd = os.open(pdf_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "wb") as handle:
        handle.write(document)
    print(f"出力しました / written: {pdf_path}", file=sys.stderr)
    return ExitCode.OK


def register(subparsers: Subparsers) -> None:
    cert = subparsers.add_parser(
        "certificate", help="deletion certificate (削除証明書): issue, verify, look up"
    )
    cert.add_argument("--from", dest="date_from", help="first day, YYYY-MM-DD (Japan time)")
    cert.add_argument("--to", dest="date_to", help="last day, YYYY-MM-DD (included)")
    cert.add_argument("--output", type=Path, default=Path("."), help="folder for the files")
    cert.set_defaults(func=_cmd_certificate)
    cert_sub = cert.add_subparsers(dest="certificate_command")
    verify = cert_sub.add_parser("verify", help="check a certificate or signed record")
    verify.add_argument("file", type=Path)
    verify.add_argument("--public-key", help="PEM file (default: this appliance's key)")
    verify.set_defaults(func=_cmd_verify)
    public = cert_sub.add_parser("public-key", help="print the appliance's public key (PEM)")
    public.add_argument("--output", type=Path, default=None)
    public.set_defaults(func=_cmd_public_key)
    look = cert_sub.add_parser("lookup", help="find a resident's deletion receipts")
    look.add_argument("--line-user-id", required=True, help="U... or - to read it from stdin")
    look.set_defaults(func=_cmd_lookup)

    exp = subparsers.add_parser("export", help="statistics CSV (aggregates only)")
    exp_sub = exp.add_subparsers(dest="export_command", required=True)
    stats = exp_sub.add_parser("stats", help="answer counts per question (Excel-ready CSV)")
    stats.add_argument("--output", type=Path, default=None)
    stats.set_defaults(func=_cmd_export_stats)
    personal = exp_sub.add_parser(
        "personal", help="personal data (only if privacy.allow_personal_export; audited)"
    )
    personal.add_argument("--output", type=Path, required=True)
    personal.set_defaults(func=_cmd_export_personal)

    rep = subparsers.add_parser("report", help="handling report (取扱状況報告書)")
    rep.add_argument("--from", dest="date_from", required=True)
    rep.add_argument("--to", dest="date_to", required=True)
    rep.add_argument("--output", type=Path, default=None)
    rep.set_defaults(func=_cmd_report)

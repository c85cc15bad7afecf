"""kairanctl retention | wipe.

kairanctl retention show                 current rules (Japanese) and their JSON
kairanctl retention set FILE             store a new version of the rules (JSON)
kairanctl retention status               last run, next boundary, notices sent
kairanctl retention run                  one run now, without LINE (expiry and masking)
kairanctl wipe --i-understand [--output DIR]   contract end: destroy all personal data
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from kairand.backup.agefmt import load_recipient_text
from kairand.config import Config
from kairand.conversation.survey import SurveyDefinition
from kairand.ctl.context import Context, Subparsers
from kairand.errors import DataError, ExitCode, UsageError
from kairand.reports.common import datetime_ja
from kairand.retention import rules as rules_mod
from kairand.retention import wipe as wipe_mod
from kairand.retention import worker
from kairand.retention.rules import Annual, RetentionRules
from kairand.retention.wipe import wipe
from kairand.store import retention as retention_store
from kairand.store import settings
from kairand.store import survey as survey_store
from kairand.store.database import Connection


def _current(conn: Connection, mask_months: int) -> tuple[int | None, RetentionRules]:
    """The rules in force: the saved ones (or the default), with W7's reservation masking."""
    found = rules_mod.from_stored(retention_store.current_rules(conn))
    version, rules = (found[0], found[2]) if found else (None, rules_mod.DEFAULT_RULES)
    return version, rules_mod.with_reservation_masking(rules, mask_months)


def _mask_months(ctx: Context) -> int:
    return ctx.config.privacy.reservation_mask_after_months


def _titles(conn: Connection) -> dict[str, str]:
    current = survey_store.current(conn)
    return {q.code: q.title for q in current[1].questions} if current else {}


def _cmd_show(ctx: Context) -> int:
    with ctx.store() as store:
        version, rules = store.read_sync(_current, _mask_months(ctx))
        titles = store.read_sync(_titles)
    print(f"保存期間の設定（版: {version or '未設定（既定）'}）")
    for line in rules_mod.describe_ja(rules, titles):
        print(f"  - {line}")
    print()
    print(rules.model_dump_json(indent=2))
    return ExitCode.OK


def _check_questions(rules: RetentionRules, survey: SurveyDefinition) -> None:
    for rule in rules.rules:
        if rule.question is not None and survey.question(rule.question) is None:
            raise DataError(
                f"the rules name question {rule.question!r}, which the current survey lacks",
                "use a question code from the survey (kairanctl retention show lists the rules)",
            )


def _save(conn: Connection, ctx: Context, rules: RetentionRules) -> int:
    current = survey_store.current(conn)
    if current is not None:
        _check_questions(rules, current[1])
    version = retention_store.save_rules(conn, rules, ctx.actor, int(time.time()))
    ctx.audit(conn, "retention.rules_saved", target=f"retention rules {version}")
    return version


def _cmd_set(ctx: Context) -> int:
    args = ctx.args
    try:
        rules = RetentionRules.model_validate_json(Path(args.file).read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataError(f"cannot read {args.file}: {exc}", "check the path") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise DataError(
            f"{args.file}: invalid retention rules at `{where}`: {first['msg']}",
            "see docs/privacy-lifecycle.md for the format; nothing was changed",
        ) from None
    with ctx.store() as store:
        version = store.write_sync(_save, ctx, rules)
    print(f"保存期間の設定を保存しました（版 {version}）")
    for line in rules_mod.describe_ja(rules):
        print(f"  - {line}")
    return ExitCode.OK


def _status(conn: Connection, mask_months: int) -> dict[str, Any]:
    version, rules = _current(conn, mask_months)
    return {
        "version": version,
        "rules": rules,
        "last_run": settings.get(conn, retention_store.LAST_RUN_KEY),
        "last_result": settings.get(conn, retention_store.LAST_RESULT_KEY),
        "notices": retention_store.notice_counts(conn),
    }


def _cmd_status(ctx: Context) -> int:
    with ctx.store() as store:
        status = store.read_sync(_status, _mask_months(ctx))
    now = int(time.time())
    last = status["last_run"]
    print(f"最終実行：{datetime_ja(last) if last else '未実施'}")
    if status["last_result"]:
        print(f"  削除・マスキング件数：{json.dumps(status['last_result']['expired'])}")
    rules: RetentionRules = status["rules"]
    for rule in rules.annual_rules():
        assert isinstance(rule.policy, Annual)
        boundary = rules_mod.next_boundary(rule.policy, now)
        print(f"次回の年度末削除：{rules_mod.format_deadline_ja(boundary)}")
    print(f"次回の実行予定：{datetime_ja(rules_mod.next_wake(rules, now))}")
    for (cycle, state), count in sorted(status["notices"].items()):
        print(f"再登録のご案内 {cycle}：{state} {count} 件")
    return ExitCode.OK


def _cmd_run(ctx: Context) -> int:
    with ctx.store() as store:
        result = asyncio.run(
            worker.run_once(store, None, int(time.time()), mask_after_months=_mask_months(ctx))
        )
    print(f"保存期間の処理を実行しました：{json.dumps(dict(result.expired))}")
    print("（再登録のご案内の送信は、kairand が行います）")
    return ExitCode.OK


def _cmd_wipe(ctx: Context) -> int:
    args = ctx.args
    step = getattr(args, "wipe_command", None)
    if step == "confirm-backups":
        return _cmd_confirm_backups(ctx)
    if step == "confirm-recovery-key":
        return _cmd_confirm_recovery_key(ctx)
    if step == "certificate":
        return _cmd_final_certificate(ctx)
    if not args.i_understand:
        raise UsageError(
            "wipe destroys ALL personal data irrecoverably; it needs --i-understand",
            "run `kairanctl wipe --i-understand` only at contract end, with kairand stopped",
        )
    result = wipe(ctx.keyring(), output_dir=args.output, now=int(time.time()), actor=ctx.actor)
    print("契約終了に伴う個人データの消去を実行しました。")
    if result.final_record:
        print(f"  最終記録（署名付き）：{result.final_record}")
    for path in result.erased:
        print(f"  上書き・削除したファイル：{path}")
    print(f"  データベースの暗号鍵：{result.key}")
    for path in result.left_in_state_dir:
        print(f"  注意：状態ディレクトリに残っているファイル：{path}")
    print(
        "  データベースを開けないことを確認しました。"
        if result.store_unreadable
        else "  警告：データベースがまだ開けます。管理者に連絡してください。"
    )
    if result.admin_command:
        print()
        print("次のコマンドを管理者が実行し、暗号鍵（systemd 資格情報）を破棄してください：")
        print(f"  {result.admin_command}")
    print()
    print("次の手順（最終の削除証明書は、すべての手順の確認後に発行されます）：")
    print("  1. kairanctl wipe confirm-backups       （バックアップの全世代を消去）")
    print("  2. kairanctl wipe confirm-recovery-key  （復旧用秘密鍵の破棄を確認）")
    print("  3. kairanctl wipe certificate           （最終の削除証明書を発行）")
    print("  （--output を指定した場合は、各手順でも同じ --output を指定してください）")
    return ExitCode.OK if result.store_unreadable else ExitCode.FAILURE


def _wipe_output(ctx: Context) -> tuple[Config, Path]:
    config = ctx.keyring()
    return config, ctx.args.output or config.daemon.state_dir.parent


def _ask(question: str, ctx: Context) -> bool:
    if ctx.args.yes:
        print(f"{question} yes（--yes）")
        return True
    try:
        answer = input(f"{question} [yes/no] ")
    except EOFError:
        answer = ""
    return answer.strip().lower() == "yes"


def _cmd_confirm_backups(ctx: Context) -> int:
    config, output = _wipe_output(ctx)
    wipe_mod.load_state(output)
    places = [str(config.backup.directory)]
    if config.backup.mirror is not None:
        places.append(str(config.backup.mirror))
    if not _ask(
        f"バックアップ（{'、'.join(places)}）の全世代を乱数で上書きして消去します。よろしいですか？",
        ctx,
    ):
        print("中止しました。何も変更していません。")
        return ExitCode.FAILURE
    destroyed = wipe_mod.confirm_backups(config, output, actor=ctx.actor, now=int(time.time()))
    for path in destroyed:
        print(f"  消去しました：{path}")
    print(f"バックアップの消去を記録しました（{len(destroyed)} ファイル）。")
    print("これら以外の場所にバックアップの複製がある場合は、それも消去してください。")
    return ExitCode.OK


def _cmd_confirm_recovery_key(ctx: Context) -> int:
    _config, output = _wipe_output(ctx)
    state = wipe_mod.load_state(output)
    if "backups" not in state["steps"]:
        raise wipe_mod.WipeStepError(
            "the backups have not been destroyed yet", "run `kairanctl wipe confirm-backups` first"
        )
    recipient = ""
    pub = Path("/etc/kairan/recovery.pub") if ctx.args.recipient is None else ctx.args.recipient
    if pub.exists():
        recipient = load_recipient_text(pub)
    if not _ask("復旧用秘密鍵のすべての複製（USB メモリ・紙など）を物理的に破壊しましたか？", ctx):
        print("記録していません。破壊してから再度実行してください。")
        return ExitCode.FAILURE
    now = int(time.time())
    wipe_mod.confirm_recovery_key(output, actor=ctx.actor, now=now, recipient=recipient)
    print("復旧用秘密鍵の破棄を記録しました。")
    return ExitCode.OK


def _cmd_final_certificate(ctx: Context) -> int:
    config, output = _wipe_output(ctx)
    written = wipe_mod.final_certificate(config, output, now=int(time.time()))
    print("最終の削除証明書を発行しました。")
    print(f"  印刷用（PDF）: {written.pdf}")
    print(f"  印刷用（文字）: {written.text}")
    print(f"  JSON          : {written.json}")
    print(f"  別紙（CSV）   : {written.annex}")
    return ExitCode.OK


def register(subparsers: Subparsers) -> None:
    ret = subparsers.add_parser("retention", help="retention rules (保存期間)")
    sub = ret.add_subparsers(dest="retention_command", required=True)
    show = sub.add_parser("show", help="current rules")
    show.set_defaults(func=_cmd_show)
    set_ = sub.add_parser("set", help="store new rules from a JSON file")
    set_.add_argument("file", type=Path)
    set_.set_defaults(func=_cmd_set)
    status = sub.add_parser("status", help="last run, next run, notices")
    status.set_defaults(func=_cmd_status)
    run = sub.add_parser("run", help="run expiry and masking now (no LINE push)")
    run.set_defaults(func=_cmd_run)

    wipe_parser = subparsers.add_parser(
        "wipe", help="contract end: destroy all personal data and issue the final certificate"
    )
    wipe_parser.add_argument("--i-understand", action="store_true", dest="i_understand")
    wipe_parser.add_argument(
        "--output", type=Path, default=None, help="folder for the final record and certificate"
    )
    wipe_parser.set_defaults(func=_cmd_wipe)
    steps = wipe_parser.add_subparsers(dest="wipe_command")
    backups = steps.add_parser(
        "confirm-backups", help="after the wipe: destroy every backup generation (local, mirror)"
    )
    key = steps.add_parser(
        "confirm-recovery-key", help="after the backups: record that the recovery key is destroyed"
    )
    key.add_argument("--recipient", type=Path, default=None, help="recovery.pub to name")
    final = steps.add_parser(
        "certificate", help="issue the final certificate once every step is recorded"
    )
    for step in (backups, key, final):
        step.add_argument("--output", type=Path, default=None, help="the wipe's --output folder")
    for step in (backups, key):
        step.add_argument("--yes", action="store_true", help="answer yes (non-interactive)")

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

from kairand.conversation.survey import SurveyDefinition
from kairand.ctl.context import Context, Subparsers
from kairand.errors import DataError, ExitCode, UsageError
from kairand.reports.common import datetime_ja
from kairand.retention import rules as rules_mod
from kairand.retention import worker
from kairand.retention.rules import Annual, RetentionRules
from kairand.retention.wipe import wipe
from kairand.store import retention as retention_store
from kairand.store import settings
from kairand.store import survey as survey_store
from kairand.store.database import Connection


def _current(conn: Connection) -> tuple[int | None, RetentionRules]:
    found = rules_mod.from_stored(retention_store.current_rules(conn))
    return (found[0], found[2]) if found else (None, RetentionRules())


def _titles(conn: Connection) -> dict[str, str]:
    current = survey_store.current(conn)
    return {q.code: q.title for q in current[1].questions} if current else {}


def _cmd_show(ctx: Context) -> int:
    with ctx.store() as store:
        version, rules = store.read_sync(_current)
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


def _status(conn: Connection) -> dict[str, Any]:
    version, rules = _current(conn)
    return {
        "version": version,
        "rules": rules,
        "last_run": settings.get(conn, retention_store.LAST_RUN_KEY),
        "last_result": settings.get(conn, retention_store.LAST_RESULT_KEY),
        "notices": retention_store.notice_counts(conn),
    }


def _cmd_status(ctx: Context) -> int:
    with ctx.store() as store:
        status = store.read_sync(_status)
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
        result = asyncio.run(worker.run_once(store, None, int(time.time())))
    print(f"保存期間の処理を実行しました：{json.dumps(dict(result.expired))}")
    print("（再登録のご案内の送信は、kairand が行います）")
    return ExitCode.OK


def _cmd_wipe(ctx: Context) -> int:
    args = ctx.args
    if not args.i_understand:
        raise UsageError(
            "wipe destroys ALL personal data irrecoverably; it needs --i-understand",
            "run `kairanctl wipe --i-understand` only at contract end, with kairand stopped",
        )
    result = wipe(ctx.keyring(), output_dir=args.output, now=int(time.time()), actor=ctx.actor)
    print("契約終了に伴う個人データの消去を実行しました。")
    if result.final_record:
        print(f"  最終記録（署名付き）：{result.final_record}")
    if result.certificate:
        print(f"  削除証明書（印刷用）：{result.certificate[0]}")
        print(f"  削除証明書（JSON）  ：{result.certificate[1]}")
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
        print("バックアップ媒体がある場合は、別途破棄してください。")
    return ExitCode.OK if result.store_unreadable else ExitCode.FAILURE


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

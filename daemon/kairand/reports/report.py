"""The handling report (取扱状況報告書, S15, S14): how personal information was handled in a
period, as the Japanese Markdown document a privacy council's audit asks for. Counts only:
no LINE user id, name or answer appears in it."""

from __future__ import annotations

import socket
from collections import Counter
from dataclasses import dataclass
from typing import Any

from kairand import __version__
from kairand.audit.chain import VerifyResult
from kairand.audit.chain import verify as verify_chain
from kairand.glossary import ROLE_LABELS, STATUS_LABELS
from kairand.reports.common import OUTCOME_LABELS, REASON_LABELS, Period, datetime_ja
from kairand.retention.receipts import REASONS
from kairand.retention.rules import RetentionRules, describe_ja, from_stored
from kairand.store import audit, metrics, receipts, reports, settings, staff
from kairand.store import retention as retention_store
from kairand.store import survey as survey_store
from kairand.store.database import Connection
from kairand.store.staff import StaffRecord

EXPORT_LABELS = {
    "export.stats": "統計（集計値のみ）",
    "export.personal": "個人データ（設定で許可されたもの）",
}


@dataclass(frozen=True)
class ReportData:
    residents: dict[str, int]
    follows: int
    unfollows: int
    registrations: int
    deliveries: list[reports.DeliveryLine]
    audit_lines: list[reports.AuditLine]
    purges: Counter[str]
    purge_kinds: Counter[str]
    chain: VerifyResult
    backup_last_ok_at: Any
    roster: list[StaffRecord]
    rules: RetentionRules
    last_retention_run: Any
    exports: list[tuple[str, str, int, int]]
    question_titles: dict[str, str]


def gather(conn: Connection, period: Period) -> ReportData:
    first, last = period.first.isoformat(), period.last.isoformat()
    found = receipts.between(conn, period.start, period.end)
    current = from_stored(retention_store.current_rules(conn))
    return ReportData(
        residents=reports.resident_counts(conn),
        follows=sum(metrics.series(conn, "follow", first, last).values()),
        unfollows=sum(metrics.series(conn, "unfollow", first, last).values()),
        registrations=sum(metrics.series(conn, "registered", first, last).values()),
        deliveries=reports.delivery_summary(conn, period.start, period.end),
        audit_lines=reports.audit_summary(conn, period.start * 1000, period.end * 1000),
        purges=Counter(r.reason for r in found),
        purge_kinds=Counter(
            f"{r.reason}.{'answers' if 'question' in r.deleted else 'registration'}" for r in found
        ),
        chain=verify_chain(audit.iter_entries(conn)),
        backup_last_ok_at=settings.get(conn, "backup.last_ok_at"),
        roster=staff.all_staff(conn),
        rules=current[2] if current else RetentionRules(),
        last_retention_run=settings.get(conn, retention_store.LAST_RUN_KEY),
        exports=reports.export_rows(conn, period.start * 1000, period.end * 1000),
        question_titles=_titles(conn),
    )


def _titles(conn: Connection) -> dict[str, str]:
    current = survey_store.current(conn)
    return {q.code: q.title for q in current[1].questions} if current else {}


def _is_staff(actor: str, roster: list[StaffRecord]) -> bool:
    return any(s.username == actor for s in roster)


def _table(header: list[str], rows: list[list[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def render(data: ReportData, period: Period, issued_at: int, issued_by: str) -> str:
    out: list[str] = [
        "# 個人情報取扱状況報告書",
        "",
        f"- 対象期間：{period.ja()}（日本時間）",
        f"- 作成日時：{datetime_ja(issued_at)}",
        f"- 作成者：{issued_by}",
        f"- システム：Kairan {__version__}（{socket.gethostname()}）",
        "",
        "本報告書は、LINE公式アカウントの運用において取り扱った個人情報の状況を、"
        "本装置の記録（操作ログ、削除記録、集計値）から作成したものです。"
        "個々の利用者を特定できる情報（LINEユーザーID、氏名、回答内容）は含みません。",
        "",
        "## 1. 登録者数",
        "",
    ]
    r = data.residents
    out += _table(
        ["区分", "人数"],
        [
            ["友だち登録中の利用者（作成時点）", f"{r['residents']:,}"],
            ["うち受信設定の登録完了", f"{r['registered']:,}"],
            ["うち配信を受け取っている方", f"{r['receiving']:,}"],
            ["うち配信停止中", f"{r['stopped']:,}"],
            ["対象期間の友だち追加", f"{data.follows:,}"],
            ["対象期間のブロック", f"{data.unfollows:,}"],
            ["対象期間の登録完了", f"{data.registrations:,}"],
        ],
    )
    out += ["", "## 2. 配信", ""]
    if data.deliveries:
        out += _table(
            ["状態", "配信数", "配信対象人数", "送信済み", "失敗"],
            [
                [
                    STATUS_LABELS.get(d.status, d.status),
                    d.deliveries,
                    f"{d.recipients:,}",
                    f"{d.sent:,}",
                    f"{d.failed:,}",
                ]
                for d in data.deliveries
            ],
        )
    else:
        out.append("対象期間に作成された配信はありません。")
    out += ["", "## 3. 取扱者名簿（職員）", ""]
    if data.roster:
        out += _table(
            ["ユーザー名", "氏名", "役割", "個人情報の取扱い", "状態"],
            [
                [
                    s.username,
                    s.display_name,
                    "・".join(ROLE_LABELS.get(x, x) for x in s.roles),
                    "あり" if s.handles_personal_data else "なし",
                    "有効" if s.active else "無効",
                ]
                for s in data.roster
            ],
        )
    else:
        out.append("職員は登録されていません。")

    staff_lines = [a for a in data.audit_lines if _is_staff(a.actor, data.roster)]
    other_lines = [a for a in data.audit_lines if not _is_staff(a.actor, data.roster)]
    out += ["", "## 4. 職員による操作（担当者・操作別）", ""]
    if staff_lines:
        out += _table(
            ["担当者", "操作", "結果", "件数"],
            [
                [a.actor, a.action, OUTCOME_LABELS.get(a.outcome, a.outcome), a.count]
                for a in staff_lines
            ],
        )
    else:
        out.append("対象期間に職員による操作の記録はありません。")
    out += ["", "### システム・管理コマンドによる処理", ""]
    if other_lines:
        out += _table(
            ["実行主体", "処理", "結果", "件数"],
            [
                [a.actor, a.action, OUTCOME_LABELS.get(a.outcome, a.outcome), a.count]
                for a in other_lines
            ],
        )
    else:
        out.append("対象期間に記録はありません。")

    denied = [a for a in data.audit_lines if a.outcome == "denied"]
    out += ["", "## 5. 拒否されたアクセス", ""]
    if denied:
        out += _table(["実行主体", "操作", "件数"], [[a.actor, a.action, a.count] for a in denied])
    else:
        out.append("対象期間に拒否されたアクセスはありません。")

    out += ["", "## 6. 個人情報の削除（理由別）", ""]
    rows: list[list[object]] = []
    for reason in REASONS:
        rows.append(
            [
                REASON_LABELS[reason],
                data.purge_kinds.get(f"{reason}.registration", 0),
                data.purge_kinds.get(f"{reason}.answers", 0),
                data.purges.get(reason, 0),
            ]
        )
    rows.append(["合計", "", "", sum(data.purges.values())])
    out += _table(["理由", "登録全体", "回答の一部", "削除記録の件数"], rows)
    out += [
        "",
        "各削除には署名付きの削除記録があり、削除証明書（`kairanctl certificate`）で"
        "一覧と検証ができます。",
        "",
        "## 7. 保存期間の設定",
        "",
    ]
    out += [f"- {line}" for line in describe_ja(data.rules, data.question_titles)]
    out.append(
        "- 最終の保存期間処理："
        + (datetime_ja(data.last_retention_run) if data.last_retention_run else "未実施")
    )
    out += ["", "## 8. データの持ち出し（エクスポート）", ""]
    if data.exports:
        out += _table(
            ["実行主体", "種類", "回数", "出力行数"],
            [
                [actor, EXPORT_LABELS.get(action, action), count, f"{rows:,}"]
                for actor, action, count, rows in data.exports
            ],
        )
    else:
        out.append("対象期間にエクスポートはありません。")
    out.append("（拒否されたエクスポートの試みは「5. 拒否されたアクセス」に記載しています）")
    chain = data.chain
    out += ["", "## 9. 操作ログの完全性", ""]
    if chain.ok:
        out.append(
            f"ハッシュチェーンを検証し、改ざんは検出されませんでした（記録 {chain.entries:,} 件、"
            f"最終ハッシュ `{chain.head_hash}`）。"
        )
    else:
        out.append(
            f"**異常あり**：記録番号 {chain.first_broken_seq} で検証に失敗しました"
            f"（{chain.reason}）。直ちに管理者へ報告してください。"
        )
    out += ["", "## 10. バックアップ", ""]
    if data.backup_last_ok_at:
        out.append(f"最後に成功したバックアップ：{datetime_ja(float(data.backup_last_ok_at))}")
    else:
        out.append("成功したバックアップの記録はありません。")
    out += ["", "以上", ""]
    return "\n".join(out)

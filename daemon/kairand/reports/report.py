"""The handling report (取扱状況報告書, S15, S14): how personal information was handled in a
period, as the Japanese Markdown document a privacy council's audit asks for. Counts only:
no LINE user id, name or answer appears in it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from kairand import __version__
from kairand.audit.chain import VerifyResult
from kairand.audit.chain import verify as verify_chain
from kairand.config import Config
from kairand.conversation.machine import UNANSWERED_METRIC
from kairand.glossary import (
    INCIDENT_KINDS,
    ROLE_LABELS,
    STATUS_LABELS,
    actor_label,
    audit_action_label,
    config_label,
)
from kairand.reports import pdf
from kairand.reports.common import OUTCOME_LABELS, REASON_LABELS, Period, datetime_ja
from kairand.retention.receipts import REASONS
from kairand.retention.rules import (
    DEFAULT_MASK_MONTHS,
    DEFAULT_RULES,
    RetentionRules,
    describe_ja,
    from_stored,
    with_reservation_masking,
)
from kairand.store import audit, confighistory, metrics, receipts, records, reports, settings, staff
from kairand.store import backup as store_backup
from kairand.store import retention as retention_store
from kairand.store import survey as survey_store
from kairand.store.database import Connection
from kairand.store.staff import StaffRecord

EXPORT_LABELS = {
    "export.stats": "統計（集計値のみ）",
    "export.personal": "個人データ（設定で許可されたもの）",
}


@dataclass(frozen=True)
class HostFacts:
    """What the report needs from outside the store (read by the caller, not by SQL)."""

    backup_files: dict[str, list[str]]  # place -> generation file names
    last_os_update: str | None  # Japanese date-time of the last package upgrade, or None
    pending_security_updates: str  # Japanese sentence: count, or why it is not known


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
    backup: dict[str, Any]
    roster: list[StaffRecord]
    rules: RetentionRules
    last_retention_run: Any
    exports: list[tuple[str, str, int, int]]
    question_titles: dict[str, str]
    incidents: list[records.Incident]
    trainings: list[records.Training]
    config_changes: list[tuple[int, dict[str, Any]]]
    unanswered_messages: int


def gather(conn: Connection, period: Period, mask_months: int = DEFAULT_MASK_MONTHS) -> ReportData:
    """The report's facts; the retention rules as in force (W7's reservation masking after
    MASK_MONTHS, config privacy.reservation_mask_after_months, included)."""
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
        backup=store_backup.last_backup(conn),
        roster=staff.all_staff(conn),
        rules=with_reservation_masking(current[2] if current else DEFAULT_RULES, mask_months),
        last_retention_run=settings.get(conn, retention_store.LAST_RUN_KEY),
        exports=reports.export_rows(conn, period.start * 1000, period.end * 1000),
        question_titles=_titles(conn),
        incidents=records.incidents_between(conn, period.start, period.end),
        trainings=records.trainings_between(conn, first, last),
        config_changes=confighistory.history(conn, period.start * 1000, period.end * 1000),
        unanswered_messages=sum(metrics.series(conn, UNANSWERED_METRIC, first, last).values()),
    )


def _titles(conn: Connection) -> dict[str, str]:
    current = survey_store.current(conn)
    return {q.code: q.title for q in current[1].questions} if current else {}


def _is_staff(actor: str, roster: list[StaffRecord]) -> bool:
    return any(s.username == actor for s in roster)


def _is_admin_access(actor: str) -> bool:
    return actor.startswith("kairanctl:") or actor == "root"


# A document is a list of sections; each holds paragraphs and tables. The Markdown and the PDF
# are rendered from the same structure, so they say the same thing.
Item = tuple[str, Any]  # ("p", text) | ("table", (header, rows))


@dataclass
class Section:
    title: str
    items: list[Item]


def _p(text: str) -> Item:
    return ("p", text)


def _t(header: list[str], rows: list[list[object]]) -> Item:
    return ("table", (header, [[str(c) for c in row] for row in rows]))


def build(
    data: ReportData,
    period: Period,
    issued_at: int,
    author: str,
    config: Config,
    host: HostFacts,
) -> tuple[list[str], list[Section]]:
    """(front matter lines, sections) of the report."""
    contract = config.contract
    front = [
        f"宛先：{contract.addressee or '（未設定）'}",
        f"受託者：{contract.contractor or '（未設定）'}",
        f"個人情報取扱責任者：{contract.handling_manager or '（未設定）'}",
        f"契約：{contract.name or '（未設定）'}（契約番号：{contract.number or '（未設定）'}）",
        f"対象期間：{period.ja()}（日本時間）",
        f"作成日時：{datetime_ja(issued_at)}",
        f"作成者：{author}",
        f"システム：Kairan {__version__}",
    ]
    sections: list[Section] = []
    intro = (
        "本報告書は、LINE公式アカウントの運用において取り扱った個人情報の状況を、"
        "本装置の記録（操作ログ、削除記録、事故・研修の記録、集計値）から作成したものです。"
        "個々の利用者を特定できる情報（LINEユーザーID、氏名、回答内容）は含みません。"
    )
    sections.append(Section("はじめに", [_p(intro)]))
    r = data.residents
    sections.append(
        Section(
            "1. 登録者数",
            [
                _t(
                    ["区分", "人数"],
                    [
                        ["友だち登録中の利用者（作成時点）", f"{r['residents']:,}"],
                        ["うち受信設定の登録完了", f"{r['registered']:,}"],
                        ["うち配信を受け取っている方", f"{r['receiving']:,}"],
                        ["うち配信停止中", f"{r['stopped']:,}"],
                        ["対象期間の友だち追加", f"{data.follows:,}"],
                        ["対象期間のブロック", f"{data.unfollows:,}"],
                        ["対象期間の登録完了", f"{data.registrations:,}"],
                        [
                            "対象期間の相談等のメッセージ（内容は保存せず件数のみ）",
                            f"{data.unanswered_messages:,}",
                        ],
                    ],
                )
            ],
        )
    )
    deliveries: list[Item] = (
        [
            _t(
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
        ]
        if data.deliveries
        else [_p("対象期間に作成された配信はありません。")]
    )
    sections.append(Section("2. 配信", deliveries))
    roster: list[Item] = [_p(f"個人情報取扱責任者：{contract.handling_manager or '（未設定）'}")]
    if data.roster:
        roster.append(
            _t(
                ["ユーザー名", "氏名", "役割", "個人情報の取扱い", "状態"],
                [
                    [
                        s.username,
                        s.display_name,
                        "・".join(ROLE_LABELS.get(x, x) for x in s.roles),
                        "取扱者" if s.handles_personal_data else "なし",
                        "有効" if s.active else "無効",
                    ]
                    for s in data.roster
                ],
            )
        )
    else:
        roster.append(_p("職員は登録されていません。"))
    sections.append(Section("3. 取扱者名簿（取扱責任者・取扱者）", roster))

    staff_lines = [a for a in data.audit_lines if _is_staff(a.actor, data.roster)]
    admin_lines = [a for a in data.audit_lines if _is_admin_access(a.actor)]
    other_lines = [
        a
        for a in data.audit_lines
        if not _is_staff(a.actor, data.roster) and not _is_admin_access(a.actor)
    ]

    def audit_table(lines: list[reports.AuditLine], empty: str) -> list[Item]:
        if not lines:
            return [_p(empty)]
        return [
            _t(
                ["担当者", "操作", "結果", "件数"],
                [
                    [
                        actor_label(a.actor),
                        audit_action_label(a.action),
                        OUTCOME_LABELS.get(a.outcome, a.outcome),
                        a.count,
                    ]
                    for a in lines
                ],
            )
        ]

    sections.append(
        Section(
            "4. 職員による操作（担当者・操作別）",
            audit_table(staff_lines, "対象期間に職員による操作の記録はありません。"),
        )
    )
    sections.append(
        Section(
            "5. 管理者（管理コマンド・root）による操作",
            [
                _p(
                    "管理コマンド（kairanctl）の操作は、sudo またはログインしたセッションの"
                    "利用者名（loginuid）で記録しています。"
                ),
                *audit_table(admin_lines, "対象期間に管理者による操作の記録はありません。"),
            ],
        )
    )
    sections.append(
        Section(
            "6. 本装置の自動処理",
            audit_table(other_lines, "対象期間に記録はありません。"),
        )
    )
    denied = [a for a in data.audit_lines if a.outcome == "denied"]
    sections.append(
        Section(
            "7. 拒否されたアクセス",
            [
                _t(
                    ["実行主体", "操作", "件数"],
                    [[actor_label(a.actor), audit_action_label(a.action), a.count] for a in denied],
                )
            ]
            if denied
            else [_p("対象期間に拒否されたアクセスはありません。")],
        )
    )
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
    sections.append(
        Section(
            "8. 個人情報の削除（理由別）",
            [
                _t(["理由", "登録全体", "回答の一部", "削除記録の件数"], rows),
                _p(
                    "各削除には署名付きの削除記録があり、削除証明書（kairanctl certificate）で"
                    "一覧と検証ができます。"
                ),
            ],
        )
    )
    retention = [_p(f"・{line}") for line in describe_ja(data.rules, data.question_titles)]
    retention.append(
        _p(
            "最終の保存期間処理："
            + (datetime_ja(data.last_retention_run) if data.last_retention_run else "未実施")
        )
    )
    sections.append(Section("9. 保存期間の設定", retention))
    export_items: list[Item] = [
        _p(
            "個人データの出力（エクスポート）の設定："
            + (
                "許可（出力のたびに操作ログに記録）"
                if config.privacy.allow_personal_export
                else "禁止（集計値のみ出力可能）"
            )
        )
    ]
    if data.exports:
        export_items.append(
            _t(
                ["実行主体", "種類", "回数", "出力行数"],
                [
                    [actor_label(actor), EXPORT_LABELS.get(action, action), count, f"{n:,}"]
                    for actor, action, count, n in data.exports
                ],
            )
        )
    else:
        export_items.append(_p("対象期間にエクスポートはありません。"))
    sections.append(Section("10. データの持ち出し（エクスポート）", export_items))
    incidents: list[Item] = (
        [
            _t(
                ["番号", "種類", "発生日時", "報告先", "第一報", "対応"],
                [
                    [
                        i.id,
                        INCIDENT_KINDS[i.kind],
                        datetime_ja(i.occurred_at),
                        i.reported_to or "（未記入）",
                        datetime_ja(i.reported_at) if i.reported_at else "未報告",
                        i.measures or "（未記入）",
                    ]
                    for i in data.incidents
                ],
            ),
            _p("書面の報告書は kairanctl incident report 番号 で作成できます。"),
        ]
        if data.incidents
        else [_p("対象期間に記録された事故（漏えい・滅失・不正アクセス等）はありません。")]
    )
    sections.append(Section("11. 事故とその報告", incidents))
    changes: list[Item] = (
        [
            _t(
                ["日時", "変更された設定", "変更前 → 変更後"],
                [
                    [
                        datetime_ja(at / 1000),
                        config_label(key),
                        value
                        if isinstance(value, str)
                        else f"{_shown(value['old'])} → {_shown(value['new'])}",
                    ]
                    for at, changed in data.config_changes
                    for key, value in changed.items()
                ],
            )
        ]
        if data.config_changes
        else [_p("対象期間に設定の変更はありません。")]
    )
    sections.append(Section("12. 安全管理措置（設定）の変更", changes))
    trainings: list[Item] = (
        [
            _t(
                ["実施日", "研修名", "講師", "受講者"],
                [
                    [t.held_on, t.title, t.instructor or "—", "、".join(t.attendees)]
                    for t in data.trainings
                ],
            )
        ]
        if data.trainings
        else [_p("対象期間に記録された研修はありません。")]
    )
    active = {s.username for s in data.roster if s.active and s.handles_personal_data}
    trained = {a for t in data.trainings for a in t.attendees}
    missing = sorted(active - trained)
    trainings.append(
        _p("対象期間に研修を受講していない取扱者：" + ("、".join(missing) if missing else "なし"))
    )
    sections.append(Section("13. 取扱者への教育・研修", trainings))
    backup_items: list[Item] = []
    last_ok = data.backup.get("last_ok_at")
    backup_items.append(
        _p(
            "最後に成功したバックアップ："
            + (datetime_ja(float(last_ok)) if last_ok else "記録なし")
        )
    )
    backup_items.append(
        _p(
            f"保存期限：{config.backup.lifetime_days} 日（これを過ぎた世代は自動的に消去）、"
            f"最大 {config.backup.keep or '制限なし'} 世代。"
            "これ以外の場所への複製は禁止しています。"
        )
    )
    backup_items.append(
        _t(
            ["保存場所", "世代数", "最古", "最新"],
            [
                [
                    place,
                    len(files),
                    files[0][7:22] if files else "—",
                    files[-1][7:22] if files else "—",
                ]
                for place, files in host.backup_files.items()
            ],
        )
    )
    sections.append(Section("14. バックアップの世代と保存場所", backup_items))
    sections.append(
        Section(
            "15. OS・パッケージの更新",
            [
                _p("最後にパッケージを更新した日時：" + (host.last_os_update or "記録なし")),
                _p("未適用のセキュリティ更新：" + host.pending_security_updates),
            ],
        )
    )
    chain = data.chain
    sections.append(
        Section(
            "16. 操作ログの完全性",
            [
                _p(
                    "ハッシュチェーンを検証し、改ざんは検出されませんでした"
                    f"（記録 {chain.entries:,} 件、最終ハッシュ {chain.head_hash}）。"
                    if chain.ok
                    else f"**異常あり**：記録番号 {chain.first_broken_seq} で検証に失敗しました"
                    f"（{chain.reason}）。直ちに管理者へ報告してください。"
                )
            ],
        )
    )
    return front, sections


TITLE = "個人情報取扱状況報告書"


def render_markdown(front: list[str], sections: list[Section]) -> str:
    out = [f"# {TITLE}", ""]
    out += [f"- {line}" for line in front]
    for section in sections:
        out += ["", f"## {section.title}", ""]
        for kind, value in section.items:
            if kind == "p":
                out += [value, ""]
            else:
                header, rows = value
                out += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
                out.append("")
    out += ["以上", ""]
    return "\n".join(out)


def _shown(value: Any) -> str:
    return "（なし）" if value is None else str(value)


def _cell(text: str) -> str:
    return text.replace("|", "｜").replace("\n", " ")


def render_pdf(front: list[str], sections: list[Section], author: str) -> bytes:
    blocks = [pdf.Block("title", text=TITLE), pdf.Block("space")]
    blocks += [pdf.Block("para", text=line) for line in front]
    for section in sections:
        blocks.append(pdf.Block("heading", text=section.title))
        for kind, value in section.items:
            if kind == "p":
                blocks.append(pdf.Block("para", text=value.replace("**", "")))
            else:
                header, rows = value
                blocks.append(pdf.Block("table", rows=[header, *rows]))
    blocks.append(pdf.Block("right", text="以上"))
    return pdf.render_pdf(blocks, title=TITLE, author=author)


def render(data: ReportData, period: Period, issued_at: int, issued_by: str) -> str:
    """Markdown with the default configuration (kept for callers without a config)."""
    front, sections = build(
        data, period, issued_at, issued_by, Config(), HostFacts({}, None, "確認していません")
    )
    return render_markdown(front, sections)

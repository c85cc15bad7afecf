"""One Japanese word per idea (docs/glossary.md): the labels every screen, message and report
uses for the code names of roles, delivery statuses and confidentiality classes. The TUI reads
them through kairand.api.schema, which re-exports this module's names."""

from __future__ import annotations

ROLE_LABELS = {
    "admin": "管理者",
    "author": "作成者",
    "approver": "承認者",
    "auditor": "監査担当",
}

STATUS_LABELS = {
    "draft": "下書き",
    "pending_approval": "承認待ち",
    "approved": "承認済み",
    "scheduled": "予約配信",
    "sending": "配信中",
    "sent": "配信済み",
    "partially_failed": "一部失敗",
    "failed": "失敗",
    "cancelled": "配信中止",
    "quota_exhausted": "送信可能数超過",
    "needs_attention": "要確認",
    "rejected": "差し戻し",
}

ACTION_LABELS = {
    "update": "編集",
    "submit": "承認依頼",
    "approve": "承認",
    "reject": "差し戻し",
    "cancel": "配信中止",
    "resume": "再開",
    "test_send": "テスト送信",
}

CONFIDENTIALITY_LABELS = {
    1: "1（公開情報）",
    2: "2（内部情報）",
    3: "3（秘密情報）",
}

# Operations in the audit log (操作ログ), as the audit screen and the handling report name them.
# Staff API calls are recorded as "api.<route name>" (kairand.api.roles).
AUDIT_ACTION_LABELS = {
    "api.me": "ログイン（利用者の確認）",
    "api.dashboard": "ダッシュボードの表示",
    "api.events": "画面の接続",
    "api.statistics": "登録者の傾向の表示",
    "api.survey.get": "アンケート設定の表示",
    "api.survey.update": "アンケートの公開",
    "api.audience.count": "配信対象人数の確認",
    "api.deliveries.list": "配信一覧の表示",
    "api.deliveries.create": "配信の作成",
    "api.deliveries.get": "配信内容の表示",
    "api.deliveries.update": "下書きの編集",
    "api.deliveries.test_send": "テスト送信",
    "api.deliveries.submit": "承認依頼",
    "api.deliveries.approve": "承認",
    "api.deliveries.reject": "差し戻し",
    "api.deliveries.resume": "配信の再開",
    "api.deliveries.cancel": "配信中止",
    "api.test_recipients.get": "テスト送信先の確認",
    "api.test_recipients.code": "テスト送信先の登録コード発行",
    "api.staff.list": "職員一覧の表示",
    "api.staff.put": "職員の登録・変更",
    "api.staff.delete": "職員の削除",
    "api.audit.list": "操作ログの表示",
    "api.audit.verify": "操作ログの検証",
    "delivery.create": "配信の作成",
    "delivery.update": "下書きの編集",
    "delivery.submit": "承認依頼",
    "delivery.approve": "承認",
    "delivery.reject": "差し戻し",
    "delivery.cancel": "配信中止",
    "delivery.resume": "配信の再開",
    "delivery.test_send": "テスト送信",
    "delivery.frozen": "配信対象の確定",
    "delivery.send_start": "配信開始",
    "delivery.send_finish": "配信終了",
    "delivery.send_refused": "配信の停止（送信不可）",
    "delivery.quota_exhausted": "送信可能数超過による停止",
    "staff.put": "職員の登録・変更",
    "staff.remove": "職員の削除",
    "staff.delete": "職員の削除",
    "survey.update": "アンケートの公開",
    "resident.purge": "登録者情報の削除",
    "retention.run": "保存期間による削除",
    "retention.mask": "保存期間による匿名化",
    "retention.expire_answers": "回答の期限切れ削除",
    "retention.notice": "保存期間の事前通知",
    "retention.rules_saved": "保存期間の設定変更",
    "export.personal": "個人情報の書き出し",
    "export.stats": "集計の書き出し",
    "report.issue": "取扱状況報告書の作成",
    "certificate.issue": "削除証明書の発行",
    "backup.created": "バックアップの作成",
    "backup.restored": "バックアップからの復元",
    "wipe.started": "データ消去の開始",
    "wipe.done": "データ消去の完了",
    "audit.checkpoint": "操作ログの署名付きチェックポイント",
}

AUDIT_OUTCOME_LABELS = {"allowed": "許可", "ok": "成功", "denied": "拒否", "failed": "失敗"}


def audit_action_label(action: str) -> str:
    """The Japanese name of an audit log action (the code itself when it has none)."""
    return AUDIT_ACTION_LABELS.get(action, action)


def audit_actions_matching(words: str) -> list[str]:
    """Action codes whose Japanese name contains WORDS (every space-separated word), or whose
    code starts with WORDS: what a staff member's search for 「承認」 or 「配信 中止」 means."""
    text = words.strip()
    if not text:
        return []
    parts = text.split()
    found = [
        code
        for code, label in AUDIT_ACTION_LABELS.items()
        if all(part in label for part in parts) or code.startswith(text)
    ]
    return found


def audit_target_label(action: str, target: str) -> str:
    """One way to name the target of an entry: 「配信番号 3」 whether the log says `delivery 3`,
    `delivery:3` or (for a delivery route) `3`; 「アンケート第3版」 for `survey:3`."""
    value = target.strip()
    if not value:
        return ""
    kind, _, number = value.replace(":", " ").partition(" ")
    if kind == "delivery" and number.strip().isdigit():
        return f"配信番号 {int(number)}"
    if kind == "survey" and number.strip().isdigit():
        return f"アンケート第{int(number)}版"
    if kind == "staff" and number.strip():
        return f"職員 {number.strip()}"
    if value.isdigit() and "deliver" in action:
        return f"配信番号 {int(value)}"
    return value

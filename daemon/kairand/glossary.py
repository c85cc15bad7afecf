"""One Japanese word per idea (docs/glossary.md): the labels every screen, message and report
uses for the code names of roles, delivery statuses and confidentiality classes. The TUI reads
them through kairand.api.schema, which re-exports this module's names."""

from __future__ import annotations

ROLE_LABELS = {
    "admin": "管理者",
    "author": "作成者",
    "approver": "承認者",
    "auditor": "監査担当",
    "counter": "窓口担当",
    "kiosk": "発券機",
    "board": "呼出表示盤",
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

# Audit log actions, as people read them (the handling report never shows raw codes). Staff
# API calls are `api.<route name>`; the rest are written by the daemon and kairanctl.
API_ROUTE_LABELS = {
    "me": "ログイン情報の確認",
    "dashboard": "稼働状況の表示",
    "events": "稼働状況の更新通知の受信",
    "statistics": "統計の表示",
    "survey.get": "アンケート設定の表示",
    "survey.update": "アンケート設定の変更",
    "audience.count": "配信対象人数の確認",
    "deliveries.list": "配信一覧の表示",
    "deliveries.create": "配信の作成",
    "deliveries.get": "配信の表示",
    "deliveries.update": "配信の編集",
    "deliveries.test_send": "テスト送信",
    "deliveries.submit": "配信の承認依頼",
    "deliveries.approve": "配信の承認",
    "deliveries.reject": "配信の差し戻し",
    "deliveries.resume": "配信の再開",
    "deliveries.cancel": "配信の中止",
    "test_recipients.get": "テスト送信先の表示",
    "test_recipients.code": "テスト送信先コードの発行",
    "staff.list": "職員名簿の表示",
    "staff.put": "職員の登録・変更",
    "staff.delete": "職員の削除",
    "audit.list": "操作ログの閲覧",
    "audit.verify": "操作ログの改ざん検知",
    "reports.handling": "取扱状況報告書の取得",
}

AUDIT_ACTION_LABELS = {
    "resident.purge": "利用者の個人情報の削除",
    "retention.expire_answers": "保存期間経過による回答の削除",
    "retention.mask": "不可逆的なマスキング",
    "retention.notice": "再登録のご案内の送信",
    "retention.rules_saved": "保存期間の設定変更",
    "retention.run": "保存期間の処理",
    "richmenu.apply": "リッチメニューの設定",
    "roster.export": "取扱者名簿の出力",
    "staff.put": "職員の登録・変更（管理コマンド）",
    "staff.remove": "職員の削除（管理コマンド）",
    "survey.update": "アンケート設定の変更",
    "wipe.started": "契約終了時の全データ消去",
    "backup.create": "バックアップの作成",
    "backup.destroy": "バックアップの消去（保存期限・世代数）",
    "backup.restore": "バックアップからの復元",
    "certificate.issue": "削除証明書の発行",
    "certificate.lookup": "削除記録の照会（本人からの申出）",
    "export.stats": "統計データの出力",
    "export.personal": "個人データの出力",
    "report.issue": "取扱状況報告書の作成",
    "config.change": "設定（安全管理措置）の変更",
    "tls.install": "Webhook 用サーバー証明書の入れ替え",
    "handover.export": "引継ぎデータの作成（自治体の鍵で封印）",
    "incident.record": "事故の記録",
    "training.record": "研修の記録",
    "delivery.create": "配信の作成",
    "delivery.update": "配信の編集",
    "delivery.submit": "配信の承認依頼",
    "delivery.approve": "配信の承認",
    "delivery.reject": "配信の差し戻し",
    "delivery.resume": "配信の再開",
    "delivery.cancel": "配信の中止",
    "delivery.test_send": "テスト送信",
    "delivery.send_start": "配信の送信開始",
    "delivery.send_finish": "配信の送信完了",
    "delivery.send_refused": "配信の送信拒否（LINE）",
    "delivery.quota_exhausted": "配信の停止（送信上限）",
    "delivery.batch_retry": "配信の再送",
    "delivery.finished": "配信の完了",
    "delivery.frozen": "配信の凍結",
}


def audit_action_label(action: str) -> str:
    """The Japanese name of an audit action; an unknown code is named as such (never bare)."""
    if action.startswith("api."):
        route = action[4:]
        return API_ROUTE_LABELS.get(route, f"職員端末からのその他の操作（{route}）")
    return AUDIT_ACTION_LABELS.get(action, f"その他の処理（{action}）")


def actor_label(actor: str) -> str:
    """Who did it, in Japanese: a staff user name stays as it is."""
    if actor.startswith("kairanctl:"):
        return f"{actor.split(':', 1)[1]}（管理コマンド）"
    if actor.startswith("system") or actor.startswith("kairand"):
        return "本装置（自動処理）"
    return actor


# Configuration keys a council reads as security measures (others are shown by key only).
CONFIG_LABELS = {
    "privacy.allow_personal_export": "個人データの出力の許可",
    "privacy.store_display_name": "LINE表示名の保存",
    "privacy.small_cell_threshold": "統計の少数セルの秘匿基準",
    "backup.lifetime_days": "バックアップの保存期限（日）",
    "backup.keep": "バックアップの保存世代数",
    "backup.mirror": "バックアップの複製先",
    "backup.directory": "バックアップの保存場所",
    "delivery.self_approval_threshold": "自己承認を認める配信人数",
    "api.socket_group": "職員端末の利用グループ",
    "webhook.tls_cert": "Webhook のサーバー証明書",
    "consultation.contacts": "相談窓口の案内",
    "consultation.hotlines": "全国の相談窓口の案内",
}


def config_label(key: str) -> str:
    label = CONFIG_LABELS.get(key)
    return f"{label}（{key}）" if label else f"設定項目 {key}"


INCIDENT_KINDS = {
    "leak": "漏えい",
    "loss": "滅失・き損",
    "unauthorised_access": "不正アクセス",
    "other": "その他の事故",
}


AUDIT_OUTCOME_LABELS = {"allowed": "許可", "ok": "成功", "denied": "拒否", "failed": "失敗"}


def _all_action_labels() -> dict[str, str]:
    labels = {f"api.{route}": label for route, label in API_ROUTE_LABELS.items()}
    labels.update(AUDIT_ACTION_LABELS)
    return labels


def audit_actions_matching(words: str) -> list[str]:
    """Action codes whose Japanese name contains WORDS (every space-separated word), or whose
    code starts with WORDS: what a staff member's search for 「承認」 or 「配信 中止」 means
    (the audit screen's filter)."""
    text = words.strip()
    if not text:
        return []
    parts = text.split()
    return [
        code
        for code, label in _all_action_labels().items()
        if all(part in label for part in parts) or code.startswith(text)
    ]


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

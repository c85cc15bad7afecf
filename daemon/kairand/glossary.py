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

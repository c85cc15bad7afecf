"""Errors of delivery operations. `code` is stable (the staff API maps it to problem+json);
`message_ja` is shown to staff as is. Never holds personal data."""

from __future__ import annotations

from kairand.errors import ExitCode, KairanError
from kairand.glossary import ACTION_LABELS, STATUS_LABELS


class DeliveryError(KairanError):
    exit_code = ExitCode.DATA
    code = "delivery_error"

    def __init__(self, code: str, message_ja: str, hint: str = "") -> None:
        super().__init__(f"{code}: {message_ja}", hint)
        self.code = code
        self.message_ja = message_ja


class DeliveryNotFound(DeliveryError):
    def __init__(self, delivery_id: int) -> None:
        super().__init__("not_found", f"配信 {delivery_id} は見つかりません。")
        self.delivery_id = delivery_id


class InvalidTransition(DeliveryError):
    """The operation is not allowed in the delivery's current status."""

    def __init__(self, delivery_id: int, status: str, action: str) -> None:
        super().__init__(
            "invalid_transition",
            f"配信 {delivery_id} は現在「{STATUS_LABELS.get(status, status)}」のため、"
            f"{ACTION_LABELS.get(action, action)}できません。",
        )
        self.status = status
        self.action = action


class ConfidentialityRefused(DeliveryError):
    """G3: only information of confidentiality class 1 may go through LINE."""

    def __init__(self, confidentiality: int) -> None:
        super().__init__(
            "confidentiality_refused",
            f"機密性{confidentiality}の情報はLINEで送信できません。"
            "LINEで配信できるのは機密性1の情報だけです。",
        )


class InvalidContent(DeliveryError):
    """The content does not fit (e.g. the segment names an unknown survey question)."""

    def __init__(self, field: str, message_ja: str) -> None:
        super().__init__("invalid_content", message_ja)
        self.field = field


class NoRecipients(DeliveryError):
    """The segment selects nobody: a delivery to 0 people is never requested nor approved.
    `reason` names the condition that leaves no one (in the survey's words)."""

    def __init__(self, reason: str) -> None:
        super().__init__("no_recipients", f"該当する登録者がいません。{reason}")
        self.reason = reason


class QuotaExceeded(DeliveryError):
    def __init__(self, needed: int, remaining: int) -> None:
        super().__init__(
            "quota_exceeded",
            f"今月の送信可能数が不足しています（必要 {needed:,} 通、残り {remaining:,} 通）。"
            "上限を超えて送信する場合は、確認のうえ承認してください。",
        )
        self.needed = needed
        self.remaining = remaining


class NoTestRecipients(DeliveryError):
    def __init__(self) -> None:
        super().__init__(
            "no_test_recipients",
            "テスト送信先が登録されていません。テスト送信先の登録コードをご自身のLINEから"
            "送信して登録してください。",
        )


class OutOfScope(DeliveryError):
    """K8: the author's sending institutions do not cover what the segment addresses."""

    def __init__(self, reason: str, field: str, message_ja: str) -> None:
        super().__init__("out_of_scope", message_ja)
        self.reason = reason
        self.field = field

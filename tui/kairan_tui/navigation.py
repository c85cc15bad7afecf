"""Which screens exist, their keys, and which roles may open each (hidden otherwise)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ScreenEntry:
    name: str
    """Mode name used by the app (code name)."""
    title: str
    """Japanese title shown in the navigation bar, help and command palette."""
    key: str
    """Function key opening the screen."""
    route: str
    """The API route (name from /v1/me `allowed`) the screen needs: shown only when allowed."""
    help: str
    """One sentence for the help screen and the command palette."""
    keywords: str = ""
    """Readings and synonyms the command palette also matches (kana typed before conversion)."""


SCREENS: tuple[ScreenEntry, ...] = (
    ScreenEntry(
        "dashboard",
        "ダッシュボード",
        "f2",
        "dashboard",
        "友だち数・登録者数・本日の配信・送信可能数・稼働状況を表示します。",
        "だっしゅぼーど ほーむ dashboard",
    ),
    ScreenEntry(
        "compose",
        "配信作成",
        "f3",
        "deliveries.create",
        "お知らせを作成し、テスト送信・下書き保存・承認依頼を行います。",
        "はいしんさくせい さくせい おしらせ compose",
    ),
    ScreenEntry(
        "approvals",
        "承認待ち",
        "f4",
        "deliveries.approve",
        "承認依頼された配信を確認し、承認または差し戻しをします。",
        "しょうにんまち しょうにん approve",
    ),
    ScreenEntry(
        "history",
        "配信履歴",
        "f5",
        "deliveries.list",
        "これまでの配信と進み具合・結果を確認し、必要なら配信中止をします。",
        "はいしんりれき りれき history",
    ),
    ScreenEntry(
        "statistics",
        "登録者の傾向",
        "f6",
        "statistics",
        "質問ごとの回答の分布を表示します（10人未満は「<10」と表示）。",
        "とうろくしゃのけいこう けいこう とうけい statistics",
    ),
    ScreenEntry(
        "survey",
        "アンケート設定",
        "f7",
        "survey.update",
        "登録者に尋ねる質問・選択肢・利用目的を編集し、新しい版として保存します。",
        "あんけーとせってい しつもん survey",
    ),
    ScreenEntry(
        "staff",
        "職員",
        "f8",
        "staff.put",
        "職員（取扱者名簿）と役割を表示し、追加・変更・削除します。",
        "しょくいん めいぼ staff",
    ),
    ScreenEntry(
        "audit",
        "監査ログ",
        "f9",
        "audit.list",
        "操作ログを条件で絞り込んで表示し、改ざんがないか「検証」します。",
        "かんさろぐ かんさ そうさろぐ audit",
    ),
)


def allowed_screens(allowed_routes: list[str] | tuple[str, ...]) -> list[ScreenEntry]:
    have = set(allowed_routes)
    return [entry for entry in SCREENS if entry.route in have]

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
    key_display: str = ""
    """How the key is written for people when its name is not (Shift+F9 arrives as f21)."""

    @property
    def label(self) -> str:
        return self.key_display or self.key.upper()


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
    ScreenEntry(
        "reservations",
        "窓口予約",
        "f10",
        "reservations.bookings",
        "窓口予約の一覧（日・週）、電話予約・日時変更・取消・来庁の記録、予約枠の設定をします。",
        "まどぐちよやく よやく まどぐち reservations",
    ),
    ScreenEntry(
        "queue",
        "呼出",
        "f11",
        "queue.desk",
        "番号札の順番待ちを窓口ごとに呼び出し、再呼出・不在・転送・窓口の休止を行います。",
        "よびだし ばんごうふだ じゅんばん まどぐち queue",
    ),
    ScreenEntry(
        "alert",
        "緊急配信",
        "f12",
        "alerts.send",
        "承認済みテンプレートに記入し、担当する学校区へ二人目の承認なしで直ちに送信します。",
        "きんきゅうはいしん きんきゅう ふしんしゃ alert",
    ),
    ScreenEntry(
        "programs",
        "配信サービス",
        "ctrl+f",
        "programs.list",
        "配信サービスごとの登録数（学校区別、10人未満は「<10」）、発信元、テンプレートの承認。",
        "はいしんさーびす がっこうく はっしんもと てんぷれーと programs",
    ),
    ScreenEntry(
        "calendar",
        "配信予定",
        "ctrl+y",
        "calendar",
        "これからの予約配信・定期配信の予定と、定期配信の承認・一時停止・終了を行います。",
        "はいしんよてい よてい かれんだー ていきはいしん calendar",
    ),
    ScreenEntry(
        "report",
        "取扱状況報告書",
        "f21",  # Shift+F9 in xterm-compatible terminals (F9 is 監査ログ); also in Ctrl+P
        "reports.handling",
        "期間を選んで取扱状況報告書（署名付きPDF）を作成し、書き出し先のフォルダーに保存します。",
        "とりあつかいじょうきょうほうこくしょ ほうこくしょ かんさ report",
        key_display="Shift+F9",
    ),
)


def allowed_screens(allowed_routes: list[str] | tuple[str, ...]) -> list[ScreenEntry]:
    have = set(allowed_routes)
    return [entry for entry in SCREENS if entry.route in have]

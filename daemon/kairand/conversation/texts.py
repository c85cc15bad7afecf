"""Fixed Japanese texts residents see (city-office tone). Survey wording itself is data."""

from __future__ import annotations

CONSENT_YES = "同意する"
CONSENT_NO = "同意しない"
SKIP = "回答しない"
NEXT_PAGE = "次へ"
PREV_PAGE = "前へ"
FINISH = "完了"
CHECK = "✓ "
PICK_YEAR = "年を選ぶ"
PICK_YEAR_MONTH = "年月を選ぶ"

SETTINGS = "設定を変更"
RESTART = "最初から回答し直す"
STOP = "配信停止"
RESUME = "配信再開"
DELETE = "登録情報を削除"
DELETE_OK = "削除する"
DELETE_NO = "削除しない"
START = "登録を始める"

CONSENT_THANKS = "ご同意いただきありがとうございます。これから{n}問の質問にお答えください。"
DECLINED = (
    "承知しました。情報は何も登録していません。\n"
    "このままでは絞り込んだお知らせはお届けできません。"
    "登録をご希望の際は、メニューの「設定を変更」を押してください。"
)
GUIDANCE = (
    "メッセージありがとうございます。\n"
    "恐れ入りますが、このアカウントでは個別のメッセージへのお返事はしておりません。"
    "お問い合わせは市役所の担当窓口へお願いいたします。\n"
    "受信設定はメニューの「設定を変更」から変更できます。"
)
MEDIA = (
    "恐れ入りますが、このアカウントでは画像・動画・ファイルなどは受け付けておりません。"
    "お送りいただいた内容は保存せず、確認もしておりません。"
)
CONSULT_HEAD = (
    "メッセージありがとうございます。\n"
    "恐れ入りますが、このアカウントでは個別のご相談やお問い合わせにお答えすることができません。"
    "お送りいただいた内容は保存しておらず、職員が確認することもありません。"
)
CONSULT_CONTACTS = "ご相談・お問い合わせは、次の窓口へお願いいたします。\n{contacts}"
CONSULT_NO_CONTACTS = "ご相談・お問い合わせは、市役所の担当窓口へお願いいたします。"
CONSULT_HOTLINES = "【全国の相談窓口】\n{lines}"
CONSULT_URGENT = "緊急の場合は110番（警察）・119番（消防・救急）へ。"
CONSULT_TAIL = "受信設定はメニューの「設定を変更」から変更できます。"


def consultation_reply(contacts: str, hotlines: tuple[str, ...]) -> str:
    """G6: the reply to a message the account cannot answer, from the configured contacts and
    hotlines (nothing of the resident's message is in it)."""
    parts = [CONSULT_HEAD]
    contacts = contacts.strip()
    parts.append(CONSULT_CONTACTS.format(contacts=contacts) if contacts else CONSULT_NO_CONTACTS)
    if hotlines:
        parts.append(CONSULT_HOTLINES.format(lines="\n".join(f"・{h}" for h in hotlines)))
    parts.append(CONSULT_URGENT)
    parts.append(CONSULT_TAIL)
    return "\n\n".join(parts)


USE_BUTTONS = "下のボタンからお選びください。"
RECONSENT = (
    "利用目的と収集する情報の説明を改めました。お手数ですが、内容をご確認のうえ、"
    "あらためて同意いただけるかお選びください。"
)
RECONSENT_DECLINED = (
    "承知しました。新しい利用目的に同意いただけるまで、お知らせの配信を停止します。\n"
    "同意される場合や登録情報の削除をご希望の場合は、メニューの「設定を変更」を押してください。"
)
NOT_REGISTERED = (
    "現在、受信設定は登録されていません。\n"
    "お知らせの受け取りを希望される場合は「登録を始める」を押してください。"
)
STALE = (
    "申し訳ありません。そのボタンは古いか、現在の質問とは異なるため受け付けられませんでした。"
    "お手数ですが、最新の質問からお答えください。"
)
QUESTIONS_CHANGED = "質問の内容が更新されました。お手数ですが、あらためてお答えください。"
INVALID_YEAR = "選択された年は受け付けられませんでした。{min}年から{max}年の間で選んでください。"
NEED_ONE = "1つ以上選んでから「完了」を押してください。"
SELECTED = "現在{n}件を選択しています。"
SELECTED_NONE = "まだ選択されていません。"
COMPLETED_AGAIN = "設定を更新しました。ご回答ありがとうございました。"
EDITED = "「{title}」の回答を変更しました。"
SETTINGS_MENU = "設定の変更メニューです。ご希望の操作を選んでください。\n現在の配信：{status}"
STATUS_ON = "受け取る"
STATUS_OFF = "停止中"
NEED_CONSENT_FIRST = "受信設定の登録には、利用目的への同意が必要です。"
STOPPED = (
    "すべてのお知らせの配信を停止しました。\n"
    "登録情報はそのまま残ります。再開するには「設定を変更」から「配信再開」を選んでください。"
)
RESUMED = "お知らせの配信を再開しました。"
ALREADY_STOPPED = "配信はすでに停止しています。"
ALREADY_RESUMED = "配信はすでに再開しています。"
CONFIRM_DELETE = (
    "登録情報（回答内容など）をすべて削除します。よろしいですか？\n"
    "削除後も友だちのままですが、絞り込んだお知らせは届かなくなります。"
)
DELETED = (
    "登録情報をすべて削除しました。\n"
    "再度登録される場合は、メニューの「設定を変更」を押してください。"
)
DELETE_CANCELLED = "削除を取りやめました。登録情報はそのままです。"
DELETE_EXPIRED = "削除の確認が完了していません。もう一度「登録情報を削除」からお手続きください。"
TEST_CODE_OK = "テスト送信先として登録しました（職員用の機能です）。"
TEST_CODE_NG = (
    "このコードは無効か、有効期限が切れています。職員用の画面で新しいコードを発行してください。"
)
QUESTION_HEADER = "【質問 {i}/{n}】"
PURPOSE_LINE = "（利用目的：{purpose}）"
PAGE_LINE = "（{page}/{pages}ページ）"
YEAR_HINT = "下の「{label}」から選んでください。日付は保存しません。"

# Text messages that act like the corresponding buttons (residents may type them).
TEXT_COMMANDS = {
    SETTINGS: "settings",
    "設定変更": "settings",
    STOP: "stop",
    RESUME: "resume",
    DELETE: "del",
    START: "start",
    "登録": "start",
    RESTART: "restart",
}

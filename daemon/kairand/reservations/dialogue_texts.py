"""Fixed Japanese texts of the booking dialogue and booking notices (city-office tone)."""

from __future__ import annotations

MENU = "窓口の来庁予約を承ります。ご希望の手続きを選んでください。"
MENU_VIEW = "予約の確認・変更・取消"
NO_SERVICES = "申し訳ありません。現在、LINEで予約を受け付けている窓口はありません。"
PICK_DATE = (
    "{service}の予約日を選んでください。\n"
    "予約できる期間：{first}〜{last}\n"
    "下のボタンは空きのある日です。カレンダーからも選べます。"
)
PICK_DATE_BUTTON = "カレンダーで選ぶ"
NO_DATES = "申し訳ありません。{service}は、現在予約できる空きがありません。"
DATE_FULL = "申し訳ありません。{date}は空きがありません。別の日をお選びください。"
DATE_OUT = "申し訳ありません。{date}は予約を受け付けていない日です。別の日をお選びください。"
PICK_TIME = "{date}の空いている時間です（残りの人数）。ご希望の時間を選んでください。"
EARLIER = "前の時間"
LATER = "後の時間"
OTHER_DATE = "日付を選び直す"
QUIT = "やめる"
QUITTED = "予約の手続きを中止しました。"
ASK_KANA = (
    "予約の確認のため、お名前をカタカナで入力してください。（例：スイタ ハナコ）\n"
    "お名前と電話番号は、この予約について市からご連絡する場合にのみ使用し、"
    "予約日から3か月後に復元できない形で書き換えます。"
)
ASK_PHONE = "日中に連絡がつく電話番号を入力してください。（例：090-1234-5678）"
CONFIRM = (
    "以下の内容で予約します。よろしいですか？\n"
    "手続き：{service}\n"
    "日時：{slot}\n"
    "場所：{counter}\n"
    "お名前：{kana}\n"
    "電話番号：{phone}"
)
CONFIRM_CHANGE = "以下の内容に予約を変更します。よろしいですか？\n" + CONFIRM.split("\n", 1)[1]
BOOK = "予約する"
CHANGE_OK = "変更する"
EDIT_CONTACT = "名前・電話番号を変更"
BOOKED = (
    "予約を受け付けました。\n予約番号：{number}\n手続き：{service}\n日時：{slot}\n場所：{counter}"
)
CHANGED = "予約を変更しました。\n" + BOOKED.split("\n", 1)[1]
BRING = "\n\n【お持ちいただくもの】\n{bring}"
FOOTER = "\n\n予約の確認・変更・取消は、メニューの「予約」からできます。"
FULL = "申し訳ありません。ご希望の時間は満席になりました。\n次の空いている時間からお選びください。"
FULL_NO_ALTERNATIVE = (
    "申し訳ありません。ご希望の時間は満席になりました。現在、ほかに予約できる空きはありません。"
)
LIMIT = (
    "{service}は、すでにご予約があります（予約番号{number}、{slot}）。\n"
    "日時の変更・取消は「予約の確認・変更・取消」からお願いします。"
)
WINDOW_CLOSED = (
    "申し訳ありません。選ばれた時間は予約の受付期間外になりました。別の時間をお選びください。"
)
LIST_HEADER = "現在のご予約です。"
LIST_LINE = "予約番号{number}：{service} {slot}"
NO_BOOKINGS = "現在、ご予約はありません。"
CHANGE = "{number}を変更"
CANCEL = "{number}を取消"
CONFIRM_CANCEL = "予約番号{number}（{service} {slot}）を取り消します。よろしいですか？"
CANCEL_OK = "取り消す"
CANCEL_NO = "取り消さない"
CANCELLED = "予約番号{number}の予約を取り消しました。"
CANCEL_KEPT = "予約はそのままです。"
NOT_FOUND = "申し訳ありません。その予約は見つからないか、すでに取り消されています。"
STALE = (
    "申し訳ありません。そのボタンは古いため受け付けられませんでした。"
    "お手数ですが、メニューの「予約」からもう一度お進みください。"
)
NEW_BOOKING = "新しく予約する"

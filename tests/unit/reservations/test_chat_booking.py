"""Booking in the chat (W1) through the real inbox worker transaction and SQLCipher store:
keyword → service → date → time → kana → phone → confirmation → booking number; view, change,
cancel; the race for the last place; bad input re-asked, nothing lost."""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from kairand.config import Config
from kairand.keys import secrets as keys
from kairand.line import inbox as worker
from kairand.reservations import calendar, service
from kairand.reservations import dialogue as booking
from kairand.reservations.model import Catalogue, DayOverride, example_service
from kairand.store import inbox
from kairand.store import reservations as rstore
from kairand.store.bootstrap import open_store
from kairand.store.database import Connection, Store

NOW = dt.datetime(2026, 9, 20, 9, 0, tzinfo=calendar.JST).timestamp()  # a Sunday
SERVICE = example_service().model_copy(update={"capacity": 2})


@pytest.fixture
def store(config: Config) -> Iterator[Store]:
    s = open_store(config)
    s.write_sync(service.save_catalogue, Catalogue(services=(SERVICE,)), "test", int(NOW))
    yield s
    s.close()


class Chat:
    """One resident talking to the account through inbox rows and process_batch."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.user = "U" + secrets.token_hex(16)
        self.keys = worker.PurgeKeys(keys.receipt_hmac_key(), keys.signing_key())
        self.ts = 0

    def _send(self, event: dict[str, Any], now: float = NOW) -> list[dict[str, Any]]:
        self.ts += 1
        body = {
            "mode": "active",
            "timestamp": self.ts,
            "source": {"type": "user", "userId": self.user},
            "webhookEventId": secrets.token_hex(13),
            "deliveryContext": {"isRedelivery": False},
            "replyToken": secrets.token_hex(16),
            **event,
        }
        row = inbox.IncomingEvent(
            body["webhookEventId"], self.user, body["type"], self.ts, json.dumps(body)
        )
        self.store.write_sync(inbox.insert_events, [row], now)
        result = self.store.write_sync(worker.process_batch, 10, now, self.keys, False)
        assert result.failed == 0
        assert result.want_profile == []  # W6: the profile is never fetched
        return [m for r in result.replies for m in r.messages]

    def say(self, text: str, now: float = NOW) -> list[dict[str, Any]]:
        return self._send({"type": "message", "message": {"type": "text", "text": text}}, now)

    def tap(self, data: str, now: float = NOW, **params: str) -> list[dict[str, Any]]:
        postback: dict[str, Any] = {"data": data}
        if params:
            postback["params"] = params
        return self._send({"type": "postback", "postback": postback}, now)


def items(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [i["action"] for m in messages for i in m.get("quickReply", {}).get("items", [])]


def tap_label(chat: Chat, messages: list[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    action = next(a for a in items(messages) if a.get("label", "").startswith(prefix))
    return chat.tap(action["data"])


def text(messages: list[dict[str, Any]]) -> str:
    return "\n".join(m["text"] for m in messages)


def book_through_chat(chat: Chat, day_label: str, time_label: str) -> list[dict[str, Any]]:
    out = chat.say("予約")
    out = tap_label(chat, out, day_label)
    out = tap_label(chat, out, time_label)
    if "カタカナ" in text(out):
        out = chat.say("すいた　はなこ")
        out = chat.say("０９０－１２３４－５６７８")
    return tap_label(chat, out, "予約する")


def _bookings(conn: Connection) -> list[rstore.Booking]:
    return rstore.in_range(conn, 0, 2**40)


@pytest.mark.req("W1")
@pytest.mark.req("W8")
@pytest.mark.req("W6")
def test_book_in_the_chat_end_to_end(store: Store) -> None:
    chat = Chat(store)
    out = chat.say("予約")
    # One service: straight to the dates with room; the picker is bounded to the window.
    assert "保育所等利用申込の予約日" in text(out)
    actions = items(out)
    picker = next(a for a in actions if a["type"] == "datetimepicker")
    assert (picker["mode"], picker["min"], picker["max"]) == ("date", "2026-09-21", "2026-10-20")
    assert actions[0]["label"] == "9月24日(木) 残り28"  # 9/21–23 are holidays in 2026
    assert len(actions) <= 13 and all(len(a["label"]) <= 20 for a in actions)
    out = tap_label(chat, out, "9月24日(木)")
    assert "9:00（残り2）" in text(out)
    out = tap_label(chat, out, "10:00")
    assert "カタカナ" in text(out) and "3か月後" in text(out)
    out = chat.say("山田花子")  # kanji: re-asked, nothing stored
    assert "カタカナ" in text(out)
    out = chat.say("すいた　はなこ")
    assert "電話番号" in text(out)
    out = chat.say("12345")
    assert "市外局番" in text(out)
    out = chat.say("０９０－１２３４－５６７８")
    assert "スイタ ハナコ" in text(out) and "090-1234-5678" in text(out)
    assert "9月24日(木) 10:00" in text(out)
    assert store.read_sync(_bookings) == []  # nothing booked before the confirmation
    out = tap_label(chat, out, "予約する")
    reply = text(out)
    assert "予約を受け付けました" in reply and "予約番号：000001" in reply
    assert "お持ちいただくもの" in reply and "就労証明書" in reply
    [b] = store.read_sync(_bookings)
    assert (b.slot, b.state, b.name_kana, b.phone, b.channel) == (
        "2026-09-24T10:00",
        "active",
        "スイタ ハナコ",
        "090-1234-5678",
        "line",
    )
    # The audit records the booking by number, without the name or phone (S8).
    audit = store.read_sync(
        lambda c: c.execute("SELECT action, target, detail FROM audit_log").fetchall()
    )
    assert ("reservation.book", "booking:000001") in [(a, t) for a, t, _ in audit]
    assert not any("スイタ" in str(row) or "090" in str(row) for row in audit)


def test_holidays_are_not_offered(store: Store) -> None:
    chat = Chat(store)
    labels = [a["label"] for a in items(chat.say("予約"))]
    # 9/21 敬老の日, 9/22 国民の休日, 9/23 秋分の日 (2026): closed.
    assert not any(label.startswith(("9月21日", "9月22日", "9月23日")) for label in labels)
    assert labels[0].startswith("9月24日(木)")


@pytest.mark.req("W1")
def test_view_change_and_cancel(store: Store) -> None:
    chat = Chat(store)
    book_through_chat(chat, "9月24日(木)", "10:00")
    out = chat.say("予約の確認")
    assert "予約番号000001：保育所等利用申込 9月24日(木) 10:00" in text(out)
    # Change: the contact is reused (not asked again), the old place is freed in the same step.
    out = tap_label(chat, out, "000001を変更")
    out = tap_label(chat, out, "9月25日(金)")
    out = tap_label(chat, out, "14:00")
    assert "以下の内容に予約を変更します" in text(out) and "スイタ ハナコ" in text(out)
    out = tap_label(chat, out, "変更する")
    assert "予約を変更しました" in text(out) and "予約番号：000002" in text(out)
    states = {b.number: b.state for b in store.read_sync(_bookings)}
    assert states == {"000001": "cancelled", "000002": "active"}
    # A second booking for the same service is refused (one active booking per resident).
    out = chat.say("予約")
    assert "予約の確認・変更・取消" in [a["label"] for a in items(out)]
    out = tap_label(chat, out, "保育所等利用申込")
    assert "すでにご予約があります" in text(out) and "000002" in text(out)
    # Cancel, with confirmation.
    out = tap_label(chat, chat.say("予約の確認"), "000002を取消")
    assert "取り消します。よろしいですか" in text(out)
    out = tap_label(chat, out, "取り消す")
    assert "予約番号000002の予約を取り消しました" in text(out)
    assert {b.state for b in store.read_sync(_bookings)} == {"cancelled"}
    assert "現在、ご予約はありません" in text(chat.say("予約の確認"))


@pytest.mark.req("W1")
def test_race_loser_is_told_full_and_offered_next_times(store: Store) -> None:
    """Three residents reach the confirmation of the same slot (2 places); the third one to
    confirm gets 満席 and the next free times, and can book one of them from the reply."""
    chats = [Chat(store) for _ in range(3)]
    confirms = []
    for chat in chats:
        out = chat.say("予約")
        out = tap_label(chat, out, "9月24日(木)")
        out = tap_label(chat, out, "9:00")
        chat.say("スイタ ハナコ")
        confirms.append(chat.say("09012345678"))
    results = [tap_label(c, o, "予約する") for c, o in zip(chats, confirms, strict=True)]
    assert ["予約を受け付けました" in text(r) for r in results] == [True, True, False]
    loser = text(results[2])
    assert "満席になりました" in loser and "9月24日(木) 9:30（残り2）" in loser
    out = tap_label(chats[2], results[2], "9:30")
    out = tap_label(chats[2], out, "予約する")
    assert "予約番号：000003" in text(out)
    slots = sorted(b.slot for b in store.read_sync(_bookings))
    assert slots == ["2026-09-24T09:00", "2026-09-24T09:00", "2026-09-24T09:30"]


def test_date_picker_answer_and_out_of_window(store: Store) -> None:
    chat = Chat(store)
    chat.say("予約")
    out = chat.tap(booking.encode("date", SERVICE.code), date="2026-10-01")
    assert "10月1日(木)の空いている時間" in text(out)
    out = chat.tap(booking.encode("date", SERVICE.code), date="2026-12-01")
    assert "予約を受け付けていない日" in text(out)
    out = chat.tap(booking.encode("date", SERVICE.code), date="2026-10-03")  # Saturday
    assert "予約を受け付けていない日" in text(out)


def test_window_closing_between_pick_and_confirm(store: Store) -> None:
    chat = Chat(store)
    out = chat.say("予約")
    out = tap_label(chat, out, "9月24日(木)")
    out = tap_label(chat, out, "9:00")
    chat.say("スイタ ハナコ")
    out = chat.say("09012345678")
    ok = next(a for a in items(out) if a["label"] == "予約する")
    late = dt.datetime(2026, 9, 23, 9, 30, tzinfo=calendar.JST).timestamp()
    out = chat.tap(ok["data"], now=late)
    assert "受付期間外" in text(out)
    assert store.read_sync(_bookings) == []


@pytest.mark.parametrize(
    "data",
    [
        "rsv=ok&s=hoiku",  # confirmation without a pending booking
        "rsv=time&s=hoiku&d=20260924&t=0915",  # not a slot
        "rsv=time&s=nothere&d=20260924&t=0900",
        "rsv=cxok&b=1",  # someone else's / unknown booking
        "rsv=chg&b=999",
        "rsv=bogus",
        "rsv=date&s=hoiku&d=2026-09-24",
        "rsv=" + "x" * 400,
    ],
)
def test_forged_or_stale_postbacks_change_nothing(store: Store, data: str) -> None:
    other = Chat(store)
    book_through_chat(other, "9月24日(木)", "10:00")
    before = store.read_sync(_bookings)
    out = Chat(store).tap(data)
    assert out and ("古いため" in text(out) or "見つからない" in text(out))
    assert store.read_sync(_bookings) == before


def test_kept_contact_is_reused_and_masked_contact_is_asked_again(store: Store) -> None:
    chat = Chat(store)
    book_through_chat(chat, "9月24日(木)", "10:00")
    out = tap_label(chat, chat.say("予約の確認"), "000001を取消")
    tap_label(chat, out, "取り消す")
    out = chat.say("予約")
    out = tap_label(chat, out, "9月25日(金)")
    out = tap_label(chat, out, "9:00")
    assert "以下の内容で予約します" in text(out)  # no kana/phone question
    chat.tap(booking.encode("quit"))
    store.write_sync(
        lambda c: c.execute("UPDATE reservation_contacts SET name_kana = '＊イ＊ ハナコ'")
    )
    out = chat.say("予約")
    out = tap_label(chat, out, "9月25日(金)")
    out = tap_label(chat, out, "9:00")
    assert "カタカナ" in text(out)


def test_standby_mode_books_nothing(store: Store) -> None:
    chat = Chat(store)
    chat._send({"type": "message", "mode": "standby", "message": {"type": "text", "text": "予約"}})
    states = store.read_sync(
        lambda c: c.execute("SELECT count(*) FROM reservation_dialogues").fetchone()[0]
    )
    assert states == 0


def test_bookings_cancellations_and_slot_edits_show_in_the_next_answer(store: Store) -> None:
    """The window's slots are memoised between events (calendar.window_slots), the places taken
    are counted in each event's own transaction: a booking, a cancellation and a staff edit of
    the slot settings each show in the very next date list and 満席 alternatives."""

    def first_date(chat: Chat) -> str:
        return str(items(chat.say("予約"))[0]["label"])

    def edit(**update: Any) -> None:
        catalogue = Catalogue(services=(SERVICE.model_copy(update=update),))
        store.write_sync(service.save_catalogue, catalogue, "staff", int(NOW))

    first = Chat(store)
    assert first_date(first) == "9月24日(木) 残り28"
    assert "予約を受け付けました" in text(book_through_chat(first, "9月24日(木)", "9:00"))
    assert first_date(Chat(store)) == "9月24日(木) 残り27"  # the booking
    edit(capacity=3)
    assert first_date(Chat(store)) == "9月24日(木) 残り41"  # the edit
    [b] = store.read_sync(_bookings)
    store.write_sync(rstore.cancel, b.id, "staff", int(NOW))
    assert first_date(Chat(store)) == "9月24日(木) 残り42"  # the cancellation
    edit(capacity=1, overrides=(DayOverride(date=dt.date(2026, 9, 24)),))  # closed; 1 a slot
    chats = [Chat(store), Chat(store)]
    confirms = []
    for chat in chats:
        out = chat.say("予約")
        assert items(out)[0]["label"] == "9月25日(金) 残り14"
        out = tap_label(chat, tap_label(chat, out, "9月25日(金)"), "9:00")
        chat.say("スイタ ハナコ")
        confirms.append(chat.say("09012345678"))
    results = [tap_label(c, o, "予約する") for c, o in zip(chats, confirms, strict=True)]
    assert "予約を受け付けました" in text(results[0])
    loser = text(results[1])
    assert "満席になりました" in loser and "9月25日(金) 9:30（残り1）" in loser
    assert "9月24日" not in loser

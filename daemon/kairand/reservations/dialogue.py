"""The booking dialogue (W1): one step at a time, like the survey. Pure: no I/O, no clock (the
caller passes `now`), no store — the shell hands in what it read (`View`) and a read-only
`Availability`, applies the returned operations in the same write transaction, and feeds the
result of a booking or cancellation back (`after_book`, `after_cancel`) for the reply.

Steps, kept per resident in `reservation_dialogues` (apart from the survey's position):

    menu → service → date (quick replies of dates with room, or the LINE date picker bounded to
    the window) → time (quick replies with the remaining places) → kana name → phone → confirm

The kana name and phone are typed once and kept for later bookings (W8) until W7 masking
overwrites them. The LINE profile is never fetched (W6): nothing here needs the display name.

Postback data: `rsv=ACTION&s=SERVICE&d=YYYYMMDD&t=HHMM&b=BOOKING&p=PAGE` (≤ 300 characters).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from kairand.conversation.events import Event
from kairand.reservations import calendar
from kairand.reservations import dialogue_texts as tx
from kairand.reservations.contact import Invalid, is_masked, normalise_kana, normalise_phone
from kairand.reservations.model import Service

MAX_QUICK_REPLY = 13
MAX_LABEL = 20
TIMES_PER_PAGE = 10
DATES_SHOWN = 11
PREFIX = "rsv="
KEYWORDS = {
    "予約": "menu",
    "予約する": "menu",
    "来庁予約": "menu",
    "窓口予約": "menu",
    "予約の確認": "list",
    "予約確認": "list",
    "予約の変更": "list",
    "予約の取消": "list",
    "予約の取り消し": "list",
    "予約の確認・変更・取消": "list",
}
ACTIONS = frozenset(
    {"menu", "list", "svc", "date", "time", "ok", "contact", "quit", "chg", "cx", "cxok", "cxno"}
)
_FIELD = re.compile(r"^[a-z0-9_]{1,32}$")
_DATE_PARAM = re.compile(r"^([0-9]{4})-([0-9]{2})-([0-9]{2})$")

Message = dict[str, Any]


# -- inputs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class MyBooking:
    id: int
    number: str
    service: str
    slot: str


@dataclass(frozen=True)
class View:
    """What the shell read about this resident, inside the transaction."""

    services: tuple[Service, ...]
    """Services open for booking in LINE (active)."""
    active: tuple[MyBooking, ...] = ()
    contact: tuple[str, str] | None = None
    """The kept (kana, phone), if any and not masked."""

    def service(self, code: str) -> Service | None:
        return next((s for s in self.services if s.code == code), None)

    def booking(self, booking_id: int) -> MyBooking | None:
        return next((b for b in self.active if b.id == booking_id), None)


class Availability(Protocol):
    def dates(self, service: Service) -> Sequence[tuple[dt.date, int]]:
        """Dates in the window with room, and the free places on each."""
        ...

    def times(self, service: Service, day: dt.date) -> Sequence[tuple[calendar.Slot, int]]:
        """Bookable slots of DAY with their remaining places."""
        ...


# -- outputs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SetDialogue:
    state: Mapping[str, Any]


@dataclass(frozen=True)
class KeepContact:
    name_kana: str
    phone: str


@dataclass(frozen=True)
class Book:
    service: str
    slot: str
    name_kana: str
    phone: str
    replaces: int | None = None


@dataclass(frozen=True)
class Cancel:
    booking_id: int


Operation = SetDialogue | KeepContact | Book | Cancel


@dataclass(frozen=True)
class Outcome:
    replies: tuple[Message, ...] = ()
    ops: tuple[Operation, ...] = ()


# Results the shell feeds back.


@dataclass(frozen=True)
class Done:
    number: str
    service: str
    slot: str
    changed: bool = False
    booking_id: int | None = None
    """The stored booking (the shell sets it; a confirmation push refers to it)."""


@dataclass(frozen=True)
class FullNow:
    service: str
    alternatives: tuple[tuple[calendar.Slot, int], ...]


@dataclass(frozen=True)
class Limit:
    service: str
    existing: MyBooking


@dataclass(frozen=True)
class Refused:
    reason: str
    """window | unknown_slot | unknown_service | not_found"""


BookResult = Done | FullNow | Limit | Refused


# -- postback data --------------------------------------------------------------------------


@dataclass(frozen=True)
class Data:
    action: str
    service: str = ""
    date: str = ""
    time: str = ""
    booking: int | None = None
    page: int = 0


def encode(
    action: str,
    service: str = "",
    date: str = "",
    time: str = "",
    booking: int | None = None,
    page: int = 0,
) -> str:
    parts = [PREFIX + action]
    if service:
        parts.append(f"s={service}")
    if date:
        parts.append(f"d={date}")
    if time:
        parts.append(f"t={time}")
    if booking is not None:
        parts.append(f"b={booking}")
    if page:
        parts.append(f"p={page}")
    return "&".join(parts)


def decode(data: str) -> Data | None:
    """The booking postback, or None when DATA is not one Kairan could have sent."""
    if not data.startswith(PREFIX) or len(data) > 300:
        return None
    fields: dict[str, str] = {}
    for part in data[len(PREFIX) :].split("&"):
        key, sep, value = part.partition("=")
        if not fields:  # the first part is the action itself
            key, value, sep = "a", part, "="
        if not sep or key in fields or key not in "asdtbp" or not _FIELD.match(value):
            return None
        fields[key] = value
    action = fields.get("a", "")
    if action not in ACTIONS:
        return None
    date, time = fields.get("d", ""), fields.get("t", "")
    if (date and not re.fullmatch(r"[0-9]{8}", date)) or (
        time and not re.fullmatch(r"[0-9]{4}", time)
    ):
        return None
    try:
        booking = int(fields["b"]) if "b" in fields else None
        page = int(fields.get("p", "0"))
    except ValueError:
        return None
    if page < 0 or page > 50:
        return None
    return Data(action, fields.get("s", ""), date, time, booking, page)


def wants(event: Event, state: Mapping[str, Any]) -> bool:
    """Whether EVENT belongs to the booking dialogue (else it goes to the survey machine)."""
    if event.kind == "postback":
        return event.data.startswith(PREFIX)
    if event.kind == "text":
        text = event.text.strip()
        return text in KEYWORDS or state.get("step") in ("kana", "phone")
    return False


# -- message builders -----------------------------------------------------------------------


def _label(text: str) -> str:
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"


def _item(label: str, data: str, display: str | None = None) -> Message:
    action: Message = {"type": "postback", "label": _label(label), "data": data}
    action["displayText"] = display if display is not None else _label(label)
    return {"type": "action", "action": action}


def _text(text: str, items: Sequence[Message] = ()) -> Message:
    message: Message = {"type": "text", "text": text}
    if items:
        assert len(items) <= MAX_QUICK_REPLY
        message["quickReply"] = {"items": list(items)}
    return message


def _day_code(day: dt.date) -> str:
    return day.strftime("%Y%m%d")


def _parse_day(code: str) -> dt.date | None:
    try:
        return dt.datetime.strptime(code, "%Y%m%d").date()
    except ValueError:
        return None


def _slot_key(day: str, time: str) -> str:
    return f"{day[:4]}-{day[4:6]}-{day[6:8]}T{time[:2]}:{time[2:]}"


def _show_slot(key: str) -> str:
    start = calendar.parse_key(key)
    return calendar.format_slot(start) if start else key


def _time_label(slot: calendar.Slot, remaining: int) -> str:
    return f"{slot.start.hour}:{slot.start.minute:02d}（残り{remaining}）"


def _time_item(service: str, slot: calendar.Slot, remaining: int) -> Message:
    data = encode("time", service, *slot.codes)
    return _item(_time_label(slot, remaining), data, slot.shown)


def booked_message(done: Done, service: Service | None) -> Message:
    counter = service.counter if service else ""
    name = service.name if service else done.service
    template = tx.CHANGED if done.changed else tx.BOOKED
    text = template.format(
        number=done.number, service=name, slot=_show_slot(done.slot), counter=counter
    )
    if service and service.what_to_bring:
        text += tx.BRING.format(bring=service.what_to_bring)
    return _text(text + tx.FOOTER)


# -- the machine ----------------------------------------------------------------------------


class _Machine:
    def __init__(self, view: View, avail: Availability, state: Mapping[str, Any], now: float):
        self.view = view
        self.avail = avail
        self.state = dict(state)
        self.now = now

    def menu(self) -> Outcome:
        services = self.view.services
        if not services:
            return Outcome((_text(tx.NO_SERVICES),), (SetDialogue({}),))
        if len(services) == 1 and not self.view.active:
            return self.pick_service(services[0].code)
        items = [_item(s.name, encode("svc", s.code), s.name) for s in services[:11]]
        if self.view.active:
            items.append(_item(tx.MENU_VIEW, encode("list"), tx.MENU_VIEW))
        return Outcome((_text(tx.MENU, items),), (SetDialogue({"step": "menu"}),))

    def pick_service(self, code: str, change: int | None = None) -> Outcome:
        service = self.view.service(code)
        if service is None:
            return self.stale()
        if change is None:
            mine = [b for b in self.view.active if b.service == code]
            if len(mine) >= service.max_active_per_resident:
                return self._limit(service, mine[0])
        return self.date_prompt(service, change)

    def _limit(self, service: Service, existing: MyBooking) -> Outcome:
        text = tx.LIMIT.format(
            service=service.name, number=existing.number, slot=_show_slot(existing.slot)
        )
        return Outcome(
            (_text(text, [_item(tx.MENU_VIEW, encode("list"), tx.MENU_VIEW)]),),
            (SetDialogue({}),),
        )

    def date_prompt(self, service: Service, change: int | None = None, notice: str = "") -> Outcome:
        dates = list(self.avail.dates(service))
        state: dict[str, Any] = {"step": "date", "s": service.code}
        if change is not None:
            state["chg"] = change
        if not dates:
            text = tx.NO_DATES.format(service=service.name)
            return Outcome((_text((notice + "\n" if notice else "") + text),), (SetDialogue({}),))
        first, last = calendar.window_dates(service, self.now)
        picker = {
            "type": "datetimepicker",
            "label": tx.PICK_DATE_BUTTON,
            "data": encode("date", service.code),
            "mode": "date",
            "initial": dates[0][0].isoformat(),
            "min": first.isoformat(),
            "max": last.isoformat(),
        }
        items: list[Message] = [
            _item(
                f"{calendar.format_date(day)} 残り{room}",
                encode("date", service.code, _day_code(day)),
                calendar.format_date(day),
            )
            for day, room in dates[:DATES_SHOWN]
        ]
        items.append({"type": "action", "action": picker})
        items.append(_item(tx.QUIT, encode("quit"), tx.QUIT))
        text = tx.PICK_DATE.format(
            service=service.name,
            first=calendar.format_date(first),
            last=calendar.format_date(last),
        )
        if notice:
            text = notice + "\n" + text
        return Outcome((_text(text, items),), (SetDialogue(state),))

    def time_prompt(self, service: Service, day: dt.date, page: int = 0) -> Outcome:
        change = self.state.get("chg")
        if not calendar.bookable_slots(service, day, self.now):
            notice = tx.DATE_OUT.format(date=calendar.format_date(day))
            return self.date_prompt(service, change, notice)
        free = [(s, r) for s, r in self.avail.times(service, day) if r > 0]
        if not free:
            notice = tx.DATE_FULL.format(date=calendar.format_date(day))
            return self.date_prompt(service, change, notice)
        pages = [free[i : i + TIMES_PER_PAGE] for i in range(0, len(free), TIMES_PER_PAGE)]
        page = min(max(page, 0), len(pages) - 1)
        items = [_time_item(service.code, s, r) for s, r in pages[page]]
        code = _day_code(day)
        if page > 0:
            items.append(_item(tx.EARLIER, encode("date", service.code, code, page=page - 1)))
        if page < len(pages) - 1:
            items.append(_item(tx.LATER, encode("date", service.code, code, page=page + 1)))
        items.append(_item(tx.OTHER_DATE, encode("svc", service.code), tx.OTHER_DATE))
        lines = [tx.PICK_TIME.format(date=calendar.format_date(day))]
        lines += [f"・{_time_label(s, r)}" for s, r in free]
        state: dict[str, Any] = {"step": "time", "s": service.code, "d": code}
        if change is not None:
            state["chg"] = change
        return Outcome((_text("\n".join(lines), items),), (SetDialogue(state),))

    def pick_time(self, service: Service, key: str) -> Outcome:
        slot = calendar.slot_for(service, key)
        if slot is None:
            return self.stale()
        if not calendar.in_window(service, slot, self.now):
            return self.date_prompt(service, self.state.get("chg"), tx.WINDOW_CLOSED)
        state: dict[str, Any] = {"s": service.code, "slot": key}
        if "chg" in self.state:
            state["chg"] = self.state["chg"]
        if self.view.contact is None:
            return Outcome((_text(tx.ASK_KANA),), (SetDialogue({**state, "step": "kana"}),))
        return self.confirm({**state, "step": "confirm"}, *self.view.contact)

    def confirm(self, state: dict[str, Any], kana: str, phone: str) -> Outcome:
        service = self.view.service(str(state.get("s", "")))
        if service is None:
            return self.stale()
        change = state.get("chg")
        template = tx.CONFIRM_CHANGE if change is not None else tx.CONFIRM
        text = template.format(
            service=service.name,
            slot=_show_slot(str(state["slot"])),
            counter=service.counter,
            kana=kana,
            phone=phone,
        )
        ok_label = tx.CHANGE_OK if change is not None else tx.BOOK
        items = [
            _item(ok_label, encode("ok", service.code), ok_label),
            _item(tx.EDIT_CONTACT, encode("contact"), tx.EDIT_CONTACT),
            _item(tx.QUIT, encode("quit"), tx.QUIT),
        ]
        clean = {k: v for k, v in state.items() if k not in ("kana",)}
        return Outcome((_text(text, items),), (SetDialogue({**clean, "step": "confirm"}),))

    def on_text(self, text: str) -> Outcome:
        step = self.state.get("step")
        if step == "kana":
            kana = normalise_kana(text)
            if isinstance(kana, Invalid):
                return Outcome((_text(kana.message),))
            state = {**self.state, "step": "phone", "kana": kana}
            return Outcome((_text(tx.ASK_PHONE),), (SetDialogue(state),))
        if step == "phone":
            phone = normalise_phone(text)
            if isinstance(phone, Invalid):
                return Outcome((_text(phone.message),))
            kana = str(self.state.get("kana", ""))
            if not kana:
                ask = SetDialogue({**self.state, "step": "kana"})
                return Outcome((_text(tx.ASK_KANA),), (ask,))
            outcome = self.confirm(dict(self.state), kana, phone)
            return Outcome(outcome.replies, (KeepContact(kana, phone), *outcome.ops))
        return self.stale()

    def on_ok(self, data: Data) -> Outcome:
        if self.state.get("step") != "confirm" or self.state.get("s") != data.service:
            return self.stale()
        if self.view.contact is None:
            return Outcome((_text(tx.ASK_KANA),), (SetDialogue({**self.state, "step": "kana"}),))
        kana, phone = self.view.contact
        change = self.state.get("chg")
        replaces = int(change) if isinstance(change, int) else None
        return Outcome(
            (),
            (Book(data.service, str(self.state["slot"]), kana, phone, replaces),),
        )

    def on_list(self) -> Outcome:
        if not self.view.active:
            start = [_item(tx.NEW_BOOKING, encode("menu"), tx.NEW_BOOKING)]
            return Outcome((_text(tx.NO_BOOKINGS, start),), (SetDialogue({}),))
        lines = [tx.LIST_HEADER]
        items: list[Message] = []
        for b in self.view.active[:6]:
            service = self.view.service(b.service)
            name = service.name if service else b.service
            shown = _show_slot(b.slot)
            lines.append(tx.LIST_LINE.format(number=b.number, service=name, slot=shown))
            items.append(_item(tx.CHANGE.format(number=b.number), encode("chg", booking=b.id)))
            items.append(_item(tx.CANCEL.format(number=b.number), encode("cx", booking=b.id)))
        items.append(_item(tx.NEW_BOOKING, encode("menu"), tx.NEW_BOOKING))
        return Outcome((_text("\n".join(lines), items[:MAX_QUICK_REPLY]),), (SetDialogue({}),))

    def on_change(self, booking_id: int | None) -> Outcome:
        booking = self.view.booking(booking_id) if booking_id is not None else None
        if booking is None:
            return Outcome((_text(tx.NOT_FOUND),), (SetDialogue({}),))
        return self.pick_service(booking.service, change=booking.id)

    def on_cancel(self, booking_id: int | None, confirmed: bool | None) -> Outcome:
        booking = self.view.booking(booking_id) if booking_id is not None else None
        if booking is None:
            return Outcome((_text(tx.NOT_FOUND),), (SetDialogue({}),))
        if confirmed is None:
            service = self.view.service(booking.service)
            text = tx.CONFIRM_CANCEL.format(
                number=booking.number,
                service=service.name if service else booking.service,
                slot=_show_slot(booking.slot),
            )
            items = [
                _item(tx.CANCEL_OK, encode("cxok", booking=booking.id), tx.CANCEL_OK),
                _item(tx.CANCEL_NO, encode("cxno", booking=booking.id), tx.CANCEL_NO),
            ]
            state = {"step": "cancel", "b": booking.id}
            return Outcome((_text(text, items),), (SetDialogue(state),))
        if self.state.get("step") != "cancel" or self.state.get("b") != booking.id:
            return self.stale()
        if not confirmed:
            return Outcome((_text(tx.CANCEL_KEPT),), (SetDialogue({}),))
        return Outcome((), (Cancel(booking.id), SetDialogue({})))

    def stale(self) -> Outcome:
        return Outcome((_text(tx.STALE),), (SetDialogue({}),))

    def on_postback(self, data: Data, params: Mapping[str, str]) -> Outcome:
        action = data.action
        if action == "menu":
            return self.menu()
        if action == "list":
            return self.on_list()
        if action == "quit":
            return Outcome((_text(tx.QUITTED),), (SetDialogue({}),))
        if action == "chg":
            return self.on_change(data.booking)
        if action in ("cx", "cxok", "cxno"):
            confirmed = None if action == "cx" else action == "cxok"
            return self.on_cancel(data.booking, confirmed)
        if action == "contact":
            if self.state.get("step") != "confirm":
                return self.stale()
            return Outcome((_text(tx.ASK_KANA),), (SetDialogue({**self.state, "step": "kana"}),))
        if action == "ok":
            return self.on_ok(data)
        service = self.view.service(data.service)
        if service is None:
            return self.stale()
        change = self.state.get("chg") if self.state.get("s") == service.code else None
        if action == "svc":
            return self.pick_service(service.code, change)
        self.state = {"s": service.code, **({"chg": change} if change is not None else {})}
        if action == "date":
            day: dt.date | None
            if data.date:
                day = _parse_day(data.date)
            else:
                match = _DATE_PARAM.match(params.get("date", ""))
                day = _parse_day("".join(match.groups())) if match else None
            if day is None:
                return self.stale()
            return self.time_prompt(service, day, data.page)
        if action == "time":
            if not data.date or not data.time:
                return self.stale()
            return self.pick_time(service, _slot_key(data.date, data.time))
        return self.stale()


def handle(
    event: Event, state: Mapping[str, Any], view: View, avail: Availability, now: float
) -> Outcome:
    """Decide what one booking event does (call only when `wants(event, state)`)."""
    machine = _Machine(view, avail, state, now)
    if event.kind == "text":
        text = event.text.strip()
        action = KEYWORDS.get(text)
        if action == "menu":
            return machine.menu()
        if action == "list":
            return machine.on_list()
        return machine.on_text(text)
    if event.kind == "postback":
        data = decode(event.data)
        if data is None:
            return machine.stale()
        return machine.on_postback(data, event.params)
    return Outcome()


def after_book(result: BookResult, view: View) -> Outcome:
    """The reply once the shell tried the booking."""
    if isinstance(result, Done):
        return Outcome((booked_message(result, view.service(result.service)),))
    if isinstance(result, FullNow):
        if not result.alternatives:
            return Outcome((_text(tx.FULL_NO_ALTERNATIVE),))
        items = [_time_item(result.service, s, r) for s, r in result.alternatives[:11]]
        items.append(_item(tx.OTHER_DATE, encode("svc", result.service), tx.OTHER_DATE))
        lines = [tx.FULL]
        lines += [f"・{s.shown}（残り{r}）" for s, r in result.alternatives]
        return Outcome((_text("\n".join(lines), items),))
    if isinstance(result, Limit):
        service = view.service(result.service)
        text = tx.LIMIT.format(
            service=service.name if service else result.service,
            number=result.existing.number,
            slot=_show_slot(result.existing.slot),
        )
        return Outcome((_text(text, [_item(tx.MENU_VIEW, encode("list"), tx.MENU_VIEW)]),))
    if result.reason == "window":
        return Outcome((_text(tx.WINDOW_CLOSED, [_item(tx.NEW_BOOKING, encode("menu"))]),))
    if result.reason == "not_found":
        return Outcome((_text(tx.NOT_FOUND),))
    return Outcome((_text(tx.STALE),))


def after_cancel(booking: MyBooking | None) -> Outcome:
    if booking is None:
        return Outcome((_text(tx.NOT_FOUND),))
    return Outcome((_text(tx.CANCELLED.format(number=booking.number)),))


def usable_contact(contact: tuple[str, str] | None) -> tuple[str, str] | None:
    """A kept contact, unless W7 masking has overwritten part of it."""
    if contact is None or is_masked(contact[0]) or is_masked(contact[1]):
        return None
    return contact

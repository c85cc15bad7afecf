"""窓口予約 (W3/W5/W4): the counter staff's desk.

The day's (or week's) bookings of one 窓口業務 with name and phone — this screen is the only
place they appear, only for the 窓口担当 role, and the daemon audits every load (S8) — plus
電話予約 for residents without LINE, 日時変更, 取消 (the resident is notified in LINE),
来庁 / 不来庁, the slot settings (W5) and a chart of bookings per time slot (W4, counts only).
Keyboard-first; fits 80×24.
"""

from __future__ import annotations

import datetime as dt
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Input, Static

from kairan_tui.client import ApiError
from kairan_tui.labels import JST
from kairan_tui.modals.confirm import ConfirmModal
from kairan_tui.screens.base import KairanScreen
from kairan_tui.widgets.bar_chart import BarChart
from kairand.api import schema

WEEKDAYS = ("月", "火", "水", "木", "金", "土", "日")
DAY_KEYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _today() -> dt.date:
    return dt.datetime.now(JST).date()


def show_date(day: dt.date) -> str:
    return f"{day.month}月{day.day}日({WEEKDAYS[day.weekday()]})"


def show_slot(key: str, with_date: bool = False) -> str:
    day = dt.date.fromisoformat(key[:10])
    hour, minute = int(key[11:13]), key[14:16]
    time = f"{hour}:{minute}"
    return f"{day.month}/{day.day}({WEEKDAYS[day.weekday()]}) {time}" if with_date else time


class PhoneBookingModal(ModalScreen[schema.PhoneBooking | None]):
    """電話予約: a booking for a resident who phoned (or has no LINE)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "やめる"),
        Binding("ctrl+s", "save", "登録する"),
    ]

    def __init__(self, service: str, day: dt.date, free: list[str]) -> None:
        super().__init__()
        self.service = service
        self.day = day
        self.free = free

    def compose(self) -> ComposeResult:
        with Vertical(id="phone-booking-dialog", classes="dialog"):
            yield Static(f"電話予約（{show_date(self.day)}）", classes="dialog-title")
            free = "、".join(self.free[:12]) or "この日に空きはありません"
            yield Static(f"空きのある時間：{free}", classes="dialog-body")
            yield Input(placeholder="時刻（例 9:30）", id="booking-time")
            yield Input(placeholder="お名前（カナ。ひらがなも可）", id="booking-kana")
            yield Input(placeholder="電話番号（例 090-1234-5678）", id="booking-phone")
            with Horizontal(classes="dialog-buttons"):
                yield Button("キャンセル", id="cancel")
                yield Button("登録する（Ctrl+S）", id="save", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#booking-time", Input).focus()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_save(self) -> None:
        time = self.query_one("#booking-time", Input).value.strip().replace("：", ":")
        hour, _, minute = time.partition(":")
        if not (hour.isdigit() and minute.isdigit() and len(minute) == 2):
            self.notify("時刻は 9:30 のように入力してください。", severity="warning")
            return
        slot = f"{self.day.isoformat()}T{int(hour):02d}:{minute}"
        kana = self.query_one("#booking-kana", Input).value
        phone = self.query_one("#booking-phone", Input).value
        if not kana.strip() or not phone.strip():
            self.notify("お名前と電話番号を入力してください。", severity="warning")
            return
        self.dismiss(
            schema.PhoneBooking(service=self.service, slot=slot, name_kana=kana, phone=phone)
        )

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "save":
            self.action_save()
        else:
            self.dismiss(None)


class ChangeModal(ModalScreen[str | None]):
    """日時変更: the new date and time of a booking."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "やめる"),
        Binding("ctrl+s", "save", "変更する"),
    ]

    def __init__(self, booking: schema.DeskBooking) -> None:
        super().__init__()
        self.booking = booking

    def compose(self) -> ComposeResult:
        with Vertical(id="change-dialog", classes="dialog"):
            yield Static(f"予約番号 {self.booking.number} の日時変更", classes="dialog-title")
            yield Static(
                f"現在：{show_slot(self.booking.slot, True)}\n新しい日時を入力してください。",
                classes="dialog-body",
            )
            yield Input(value=self.booking.slot.replace("T", " "), id="change-slot")
            with Horizontal(classes="dialog-buttons"):
                yield Button("キャンセル", id="cancel")
                yield Button("変更する（Ctrl+S）", id="save", variant="primary")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_save(self) -> None:
        value = self.query_one(Input).value.strip().replace("/", "-")
        date, _, time = value.partition(" ")
        hour, _, minute = time.partition(":")
        try:
            day = dt.date.fromisoformat(date)
        except ValueError:
            day = None
        if day is None or not (hour.isdigit() and minute.isdigit() and len(minute) == 2):
            self.notify("2027-10-01 9:30 のように入力してください。", severity="warning")
            return
        self.dismiss(f"{day.isoformat()}T{int(hour):02d}:{minute}")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "save":
            self.action_save()
        else:
            self.dismiss(None)


def _periods_text(periods: tuple[schema.Period, ...] | list[schema.Period]) -> str:
    return ",".join(f"{p.start}-{p.end}" for p in periods)


class SlotSettingsModal(ModalScreen[schema.Service | None]):
    """予約枠の設定 (W5): slot length, capacity, the weekly hours, closures, the window."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "やめる"),
        Binding("ctrl+s", "save", "保存する"),
    ]

    def __init__(self, service: schema.Service) -> None:
        super().__init__()
        self.service = service

    def _field(self, label: str, value: str, field_id: str) -> ComposeResult:
        with Horizontal(classes="settings-row"):
            yield Static(label, classes="settings-label")
            yield Input(value=value, id=field_id, classes="settings-input")

    def compose(self) -> ComposeResult:
        s = self.service
        with Vertical(id="slot-settings-dialog", classes="dialog"):
            yield Static(f"予約枠の設定：{s.name}", classes="dialog-title")
            with VerticalScroll(id="slot-settings-fields"):
                yield from self._field("1枠の長さ（分）", str(s.slot_minutes), "set-minutes")
                yield from self._field("1枠の定員（人）", str(s.capacity), "set-capacity")
                yield from self._field("受付開始（日前）", str(s.opens_days_ahead), "set-opens")
                yield from self._field(
                    "受付締切（時間前）", str(s.closes_hours_before), "set-closes"
                )
                for key, label in zip(DAY_KEYS, WEEKDAYS, strict=True):
                    yield from self._field(
                        f"{label}曜日の受付時間",
                        _periods_text(s.weekly.get(key, ())),
                        f"set-{key}",
                    )
                closures = ",".join(d.isoformat() for d in s.closures)
                yield from self._field("臨時休業日", closures, "set-closures")
            yield Static(
                "受付時間は 09:00-12:00,13:00-17:00 のように、休業日は 2027-10-09 のように"
                "カンマで区切って入力します。祝日と12/29〜1/3は自動で休業です。",
                classes="dialog-hint",
            )
            with Horizontal(classes="dialog-buttons"):
                yield Button("キャンセル", id="cancel")
                yield Button("保存する（Ctrl+S）", id="save", variant="primary")

    def _value(self, field_id: str) -> str:
        return self.query_one(f"#{field_id}", Input).value.strip()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_save(self) -> None:
        try:
            weekly: dict[str, list[dict[str, str]]] = {}
            for key in DAY_KEYS:
                text = self._value(f"set-{key}")
                if text:
                    weekly[key] = [
                        {"start": a.strip(), "end": b.strip()}
                        for a, _, b in (part.partition("-") for part in text.split(","))
                    ]
            closures = [c.strip() for c in self._value("set-closures").split(",") if c.strip()]
            data = {
                **self.service.model_dump(mode="json"),
                "slot_minutes": int(self._value("set-minutes")),
                "capacity": int(self._value("set-capacity")),
                "opens_days_ahead": int(self._value("set-opens")),
                "closes_hours_before": int(self._value("set-closes")),
                "weekly": weekly,
                "closures": closures,
            }
            updated = schema.Service.model_validate(data)
        except (ValueError, TypeError):
            self.notify("入力内容を確認してください（数字・時刻・日付の形）。", severity="warning")
            return
        self.dismiss(updated)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "save":
            self.action_save()
        else:
            self.dismiss(None)


class ReservationDeskScreen(KairanScreen):
    SCREEN_NAME = "reservations"
    START_DATE: ClassVar[dt.date | None] = None
    """The day shown first (None: today). Tests pin it."""
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "move(-1)", "前の日"),
        Binding("n", "move(1)", "次の日"),
        Binding("w", "toggle_week", "日/週"),
        Binding("a", "phone_booking", "電話予約"),
        Binding("c", "change", "日時変更"),
        Binding("x", "cancel_booking", "取消"),
        Binding("1", "outcome('attended')", "来庁"),
        Binding("2", "outcome('no_show')", "不来庁"),
        Binding("0", "outcome('active')", "予約中に戻す", show=False),
        Binding("e", "next_service", "業務切替", show=False),
        Binding("s", "settings", "予約枠設定"),
        Binding("g", "chart", "集計"),
        Binding("r", "reload", "更新", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.day = self.START_DATE or _today()
        self.days = 1
        self.service: str | None = None
        self.desk: schema.Desk | None = None
        self.catalogue: schema.ReservationServices | None = None
        self.showing_chart = False

    def compose_body(self) -> ComposeResult:
        yield Static("", id="desk-title", classes="box-title")
        yield Static("", id="desk-summary")
        table: DataTable[str | Text] = DataTable(
            id="desk-table", cursor_type="row", zebra_stripes=True
        )
        yield table
        yield VerticalScroll(id="desk-chart")

    def on_mount(self) -> None:
        table = self.query_one("#desk-table", DataTable)
        table.add_columns("日時", "番号", "氏名（カナ）", "電話番号", "経路", "状態")
        self.query_one("#desk-chart").display = False

    def refresh_data(self) -> None:
        self.load()

    def action_reload(self) -> None:
        self.load()

    def action_move(self, step: int) -> None:
        self.day += dt.timedelta(days=step * self.days)
        self.load()

    def action_toggle_week(self) -> None:
        self.days = 7 if self.days == 1 else 1
        if self.days == 7:
            self.day -= dt.timedelta(days=self.day.weekday())
        self.load()

    def action_next_service(self) -> None:
        if self.catalogue and len(self.catalogue.catalogue.services) > 1:
            codes = [s.code for s in self.catalogue.catalogue.services]
            index = codes.index(self.service) if self.service in codes else -1
            self.service = codes[(index + 1) % len(codes)]
            self.load()

    @work(exit_on_error=False, exclusive=True, group="desk")
    async def load(self) -> None:
        try:
            self.catalogue = await self.api.reservation_services()
            if not self.catalogue.catalogue.services:
                self.query_one("#desk-title", Static).update(
                    "予約を受け付ける窓口業務がまだありません。管理者に設定を依頼してください。"
                )
                return
            desk = await self.api.desk(self.service, self.day, self.days)
        except ApiError as exc:
            self.report(exc, "予約の表示")
            return
        self.desk = desk
        self.service = desk.service
        self._show(desk)
        if self.showing_chart:
            await self._load_chart()

    def _show(self, desk: schema.Desk) -> None:
        span = show_date(desk.first)
        if desk.days > 1:
            span += f"〜{show_date(desk.first + dt.timedelta(days=desk.days - 1))}"
        self.query_one("#desk-title", Static).update(f"{desk.service_name}（{desk.counter}）{span}")
        capacity = sum(s.capacity for s in desk.slots)
        taken = sum(s.taken for s in desk.slots)
        states = [b.state for b in desk.bookings]
        summary = (
            f"予約 {states.count('active') + states.count('attended') + states.count('no_show')}件"
            f"（来庁 {states.count('attended')}・不来庁 {states.count('no_show')}・"
            f"取消 {states.count('cancelled')}）　定員 {capacity}・空き {capacity - taken}"
        )
        if not desk.slots:
            summary = "この期間は休業日です（祝日・年末年始・臨時休業を含みます）。"
        self.query_one("#desk-summary", Static).update(summary)
        table = self.query_one("#desk-table", DataTable)
        cursor = table.cursor_row
        table.clear()
        for b in desk.bookings:
            state = schema.BOOKING_STATE_LABELS.get(b.state, b.state)
            style = "dim" if b.state == "cancelled" else ""
            table.add_row(
                show_slot(b.slot, with_date=True),
                b.number,
                Text(b.name_kana or "（削除済み）", style=style),
                b.phone or "",
                schema.CHANNEL_LABELS.get(b.channel, b.channel),
                Text(state, style=style),
                key=str(b.id),
            )
        if desk.bookings:
            table.move_cursor(row=min(cursor, len(desk.bookings) - 1))

    def _selected(self) -> schema.DeskBooking | None:
        if self.desk is None or not self.desk.bookings:
            self.notify("予約が選ばれていません。", severity="warning")
            return None
        row = self.query_one("#desk-table", DataTable).cursor_row
        if not 0 <= row < len(self.desk.bookings):
            return None
        return self.desk.bookings[row]

    # -- actions ---------------------------------------------------------------------------

    def action_phone_booking(self) -> None:
        if self.desk is None:
            return
        day = self.day
        free = [
            show_slot(s.slot)
            for s in self.desk.slots
            if s.slot.startswith(day.isoformat()) and s.taken < s.capacity
        ]

        def done(body: schema.PhoneBooking | None) -> None:
            self._book(body)

        self.app.push_screen(PhoneBookingModal(self.desk.service, day, free), done)

    @work(exit_on_error=False, group="desk-action")
    async def _book(self, body: schema.PhoneBooking | None) -> None:
        if body is None:
            return
        try:
            booking = await self.api.phone_booking(body)
        except ApiError as exc:
            self.report(exc, "電話予約の登録")
            return
        self.notify(f"予約番号 {booking.number}（{show_slot(booking.slot, True)}）を登録しました。")
        self.load()

    def action_change(self) -> None:
        booking = self._selected()
        if booking is None:
            return
        if booking.state != "active":
            self.notify("予約中の予約だけ日時を変更できます。", severity="warning")
            return

        def done(slot: str | None) -> None:
            if slot:
                self._change(booking, slot)

        self.app.push_screen(ChangeModal(booking), done)

    @work(exit_on_error=False, group="desk-action")
    async def _change(self, booking: schema.DeskBooking, slot: str) -> None:
        try:
            new = await self.api.change_booking(booking.id, slot)
        except ApiError as exc:
            self.report(exc, "日時の変更")
            return
        self.notify(f"予約番号 {new.number}（{show_slot(new.slot, True)}）に変更しました。")
        self.load()

    def action_cancel_booking(self) -> None:
        booking = self._selected()
        if booking is None:
            return
        if booking.state != "active":
            self.notify("予約中の予約だけ取り消せます。", severity="warning")
            return
        line = "LINEで予約した方には取消のお知らせが届きます。" if booking.channel == "line" else ""
        modal = ConfirmModal(
            f"予約番号 {booking.number} を取り消しますか",
            f"{show_slot(booking.slot, True)} の予約を取り消します。{line}",
            confirm_label="取り消す",
        )

        def done(yes: bool | None) -> None:
            if yes:
                self._cancel(booking)

        self.app.push_screen(modal, done)

    @work(exit_on_error=False, group="desk-action")
    async def _cancel(self, booking: schema.DeskBooking) -> None:
        try:
            await self.api.cancel_booking(booking.id)
        except ApiError as exc:
            self.report(exc, "予約の取消")
            return
        self.notify(f"予約番号 {booking.number} を取り消しました。")
        self.load()

    def action_outcome(self, outcome: str) -> None:
        booking = self._selected()
        if booking is None:
            return
        if booking.state == "cancelled":
            self.notify("取り消された予約です。", severity="warning")
            return
        self._outcome(booking, outcome)

    @work(exit_on_error=False, group="desk-action")
    async def _outcome(self, booking: schema.DeskBooking, outcome: str) -> None:
        try:
            await self.api.booking_outcome(booking.id, outcome)
        except ApiError as exc:
            self.report(exc, "来庁の記録")
            return
        label = schema.BOOKING_STATE_LABELS[outcome]
        self.notify(f"予約番号 {booking.number} を「{label}」にしました。")
        self.load()

    def action_settings(self) -> None:
        if self.catalogue is None or self.desk is None:
            return
        current = next(
            (s for s in self.catalogue.catalogue.services if s.code == self.desk.service), None
        )
        if current is None:
            return

        def done(service: schema.Service | None) -> None:
            self._save_settings(service)

        self.app.push_screen(SlotSettingsModal(current), done)

    @work(exit_on_error=False, group="desk-action")
    async def _save_settings(self, service: schema.Service | None) -> None:
        if service is None or self.catalogue is None:
            return
        services = tuple(
            service if s.code == service.code else s for s in self.catalogue.catalogue.services
        )
        try:
            version = await self.api.save_reservation_services(schema.Catalogue(services=services))
        except ApiError as exc:
            self.report(exc, "予約枠の保存")
            return
        self.notify(f"予約枠の設定を保存しました（第{version}版）。")
        self.load()

    def action_chart(self) -> None:
        self.showing_chart = not self.showing_chart
        self.query_one("#desk-table").display = not self.showing_chart
        self.query_one("#desk-chart").display = self.showing_chart
        if self.showing_chart:
            self.run_worker(self._load_chart(), exclusive=True, group="desk-chart")

    async def _load_chart(self) -> None:
        last = self.day + dt.timedelta(days=self.days - 1)
        first = last - dt.timedelta(days=29) if self.days == 1 else self.day
        try:
            stats = await self.api.reservation_statistics(first, last)
        except ApiError as exc:
            self.report(exc, "集計の表示")
            return
        body = self.query_one("#desk-chart", VerticalScroll)
        await body.remove_children()
        widgets: list[Static] = [
            Static(
                f"{show_date(first)}〜{show_date(last)}の予約数（{stats.small_cell_threshold}件"
                f"未満は「<{stats.small_cell_threshold}」）",
                classes="chart-title",
            )
        ]
        for dimension, title in (("time", "時間帯別"), ("weekday", "曜日別")):
            rows = [
                (line.label, _count(line.counts["booked"]), line.counts["booked"])
                for line in stats.lines
                if line.dimension == dimension
            ]
            if rows:
                widgets.append(Static(title, classes="chart-title"))
                widgets.append(BarChart(rows, classes="chart"))
        if len(widgets) == 1:
            widgets.append(Static("この期間の予約はまだありません。"))
        await body.mount_all(widgets)


def _count(shown: str) -> int | None:
    return int(shown) if shown.isdigit() else None

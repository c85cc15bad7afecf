"""The rule of a recurring delivery (定期配信): weekly on weekdays, monthly on dates or on the
n-th weekday (第2・第4水曜), a time, a start, an end date or a count, and what to do on holidays.
Shows the rule in words and the next sends as staff type."""

from __future__ import annotations

import asyncio
import datetime as dt

from pydantic import ValidationError
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Checkbox, Input, Label, Select, Static

from kairan_tui.widgets.rich_items import ItemProblem
from kairand.api import schema

WEEKDAYS = "月火水木金土日"
NTH = [(1, "第1"), (2, "第2"), (3, "第3"), (4, "第4"), (5, "第5"), (-1, "最終")]
FREQUENCIES = [
    ("毎週（曜日を選ぶ）", "weekly"),
    ("毎月（日にちを選ぶ）", "monthly_date"),
    ("毎月（第○曜日）", "monthly_weekday"),
]
HOLIDAYS = [
    ("祝日も送る", "send"),
    ("祝日は送らない", "skip"),
    ("祝日は翌営業日に送る", "next_business_day"),
    ("祝日は前営業日に送る", "previous_business_day"),
]


def _nth_id(value: int) -> str:
    return "nth-last" if value == -1 else f"nth-{value}"


def _date(text: str, what: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text.strip().replace("/", "-"))
    except ValueError:
        raise ItemProblem(f"{what}は「2026-04-01」の形で入力してください。") from None


class RecurrenceForm(Vertical):
    DEFAULT_CSS = """
    RecurrenceForm { height: auto; border: round $panel-lighten-2; padding: 0 1; }
    RecurrenceForm Horizontal { height: auto; }
    RecurrenceForm Checkbox { width: auto; padding: 0; margin-right: 1; }
    RecurrenceForm Input { width: 1fr; }
    RecurrenceForm .field-label { color: $text-muted; }
    RecurrenceForm #rule-summary { height: auto; color: $success; }
    RecurrenceForm #rule-summary.error { color: $warning; }
    """

    def compose(self) -> ComposeResult:
        yield Label("繰り返し", classes="field-label")
        yield Select(FREQUENCIES, value="weekly", allow_blank=False, id="rule-frequency")
        with Horizontal(id="rule-nth"):
            for value, label in NTH:
                yield Checkbox(label, value=value in (2, 4), id=_nth_id(value))
        with Horizontal(id="rule-weekdays"):
            for i, name in enumerate(WEEKDAYS):
                yield Checkbox(name, value=i == 2, id=f"weekday-{i}")
        yield Input(placeholder="日にち（例：1,15）", id="rule-days")
        with Horizontal():
            yield Input("08:00", placeholder="時刻 08:00", id="rule-time")
            yield Input(
                (dt.date.today() + dt.timedelta(days=1)).isoformat(),
                placeholder="開始日",
                id="rule-start",
            )
        with Horizontal():
            yield Input(placeholder="終了日（任意）", id="rule-until")
            yield Input(placeholder="回数（任意）", id="rule-count")
        yield Select(HOLIDAYS, value="skip", allow_blank=False, id="rule-holidays")
        yield Static("", id="rule-summary")

    def on_mount(self) -> None:
        self._show_fields()
        self.update_summary()

    def _frequency(self) -> str:
        value = self.query_one("#rule-frequency", Select).value
        return value if isinstance(value, str) else "weekly"

    def _show_fields(self) -> None:
        freq = self._frequency()
        self.query_one("#rule-nth").display = freq == "monthly_weekday"
        self.query_one("#rule-weekdays").display = freq != "monthly_date"
        self.query_one("#rule-days").display = freq == "monthly_date"

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self._show_fields()
        self.update_summary()

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        event.stop()
        self.update_summary()

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.update_summary()

    def set_rule(self, rule: schema.RecurrenceRule) -> None:
        """Fill the form from an existing series' rule (to change it)."""
        self.query_one("#rule-frequency", Select).value = rule.frequency
        for i in range(7):
            self.query_one(f"#weekday-{i}", Checkbox).value = i in rule.weekdays
        for value, _ in NTH:
            self.query_one(f"#{_nth_id(value)}", Checkbox).value = value in rule.nth
        self.query_one("#rule-days", Input).value = ",".join(str(d) for d in rule.month_days)
        self.query_one("#rule-time", Input).value = f"{rule.time:%H:%M}"
        self.query_one("#rule-start", Input).value = rule.start.isoformat()
        self.query_one("#rule-until", Input).value = rule.until.isoformat() if rule.until else ""
        self.query_one("#rule-count", Input).value = str(rule.count) if rule.count else ""
        self.query_one("#rule-holidays", Select).value = rule.holidays
        self._show_fields()
        self.update_summary()

    def rule(self) -> schema.RecurrenceRule:
        """The rule as entered; ItemProblem (Japanese) when incomplete."""
        freq = self._frequency()
        weekdays = [i for i in range(7) if self.query_one(f"#weekday-{i}", Checkbox).value]
        nth = [v for v, _ in NTH if self.query_one(f"#{_nth_id(v)}", Checkbox).value]
        days: list[int] = []
        if freq == "monthly_date":
            try:
                raw = self.query_one("#rule-days", Input).value.replace("、", ",")
                days = [int(x) for x in raw.split(",") if x.strip()]
            except ValueError:
                raise ItemProblem("日にちは「1,15」のように数字で入力してください。") from None
        try:
            time = dt.time.fromisoformat(self.query_one("#rule-time", Input).value.strip())
        except ValueError:
            raise ItemProblem("時刻は「08:00」の形で入力してください。") from None
        until_text = self.query_one("#rule-until", Input).value.strip()
        count_text = self.query_one("#rule-count", Input).value.strip()
        if count_text and not count_text.isdigit():
            raise ItemProblem("回数は数字で入力してください。")
        try:
            return schema.RecurrenceRule(
                frequency=freq,  # type: ignore[arg-type]
                weekdays=tuple(weekdays) if freq != "monthly_date" else (),
                month_days=tuple(days),
                nth=tuple(nth) if freq == "monthly_weekday" else (),
                time=time,
                start=_date(self.query_one("#rule-start", Input).value, "開始日"),
                until=_date(until_text, "終了日") if until_text else None,
                count=int(count_text) if count_text else None,
                holidays=self.query_one("#rule-holidays", Select).value,  # type: ignore[arg-type]
            )
        except ValidationError as exc:
            message = str(exc.errors()[0].get("msg", ""))
            if "weekday" in message:
                raise ItemProblem("曜日を選んでください。") from None
            if "day of the month" in message:
                raise ItemProblem("日にちを入力してください（1〜31）。") from None
            if "weekdays of the month" in message:
                raise ItemProblem("第何週かを選んでください。") from None
            if "end date" in message:
                raise ItemProblem("終了日が開始日より前です。") from None
            raise ItemProblem("繰り返しの条件を確認してください。") from None

    @work(exit_on_error=False, exclusive=True, group="rule-summary")
    async def update_summary(self) -> None:
        summary = self.query_one("#rule-summary", Static)
        try:
            rule = self.rule()
        except ItemProblem as problem:
            summary.add_class("error")
            summary.update(str(problem))
            return
        # Off the event loop: the holiday tables are read from files.
        upcoming = await asyncio.to_thread(schema.occurrences, rule, limit=4)
        dates = "、".join(f"{o:%m/%d}（{WEEKDAYS[o.weekday()]}）" for o in upcoming)
        summary.remove_class("error")
        summary.update(f"{schema.describe(rule)}\n次の配信：{dates or 'なし'}")

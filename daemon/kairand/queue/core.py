"""The same-day queue's rules, pure: no I/O, no clock (callers pass `now`).

A ticket belongs to one service and one day (Japan time) and carries the service's prefix and a
number that counts 1, 2, 3, … per service and day (A-001). States:

    waiting → called → serving → done
    called → called (再呼出, at most `recall_limit` times) → absent (不在)
    waiting | called → cancelled (the resident, or the day closing)
    waiting | called → waiting in another service (転送: a new number there, this one closed)

Who is next: a booked resident who arrived within the grace period of their slot goes first
(oldest first), then everybody else by number. A ticket needs no name and no phone.
"""

from __future__ import annotations

import datetime as dt
import secrets
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import quote

from kairand.timeutil import JST

State = Literal["waiting", "called", "serving", "done", "absent", "cancelled", "transferred"]
Action = Literal["call", "recall", "serve", "done", "absent", "cancel", "transfer", "close"]
Channel = Literal["line", "kiosk", "desk"]
OPEN_STATES: Final = frozenset({"waiting", "called", "serving"})
FINAL_STATES: Final = frozenset({"done", "absent", "cancelled", "transferred"})

_TRANSITIONS: Final[dict[tuple[str, str], str]] = {
    ("waiting", "call"): "called",
    ("called", "recall"): "called",
    ("called", "serve"): "serving",
    ("serving", "done"): "done",
    ("called", "absent"): "absent",
    ("waiting", "cancel"): "cancelled",
    ("called", "cancel"): "cancelled",
    ("waiting", "transfer"): "transferred",
    ("called", "transfer"): "transferred",
    ("serving", "transfer"): "transferred",
    ("waiting", "close"): "cancelled",
    ("called", "close"): "absent",
    ("serving", "close"): "done",
}
TOKEN_BYTES: Final = 16
"""128 random bits per kiosk QR token: unguessable."""
TOKEN_PREFIX: Final = "番号札の連携 "  # noqa: S105 - message text, not a secret
"""The text the kiosk's QR link pre-fills in LINE, before the token."""


class QueueRuleError(Exception):
    """An action the ticket's state does not allow; `message` is for staff or residents."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def transition(state: str, action: str, *, recalls: int = 0, recall_limit: int = 2) -> str:
    """The state after ACTION, or QueueRuleError when the state does not allow it."""
    if action == "recall" and state == "called" and recalls >= recall_limit:
        raise QueueRuleError(
            "recall_limit", f"再呼出は{recall_limit}回までです。不在にしてください。"
        )
    new = _TRANSITIONS.get((state, action))
    if new is None:
        raise QueueRuleError(
            "state", f"この番号札（{STATE_LABELS.get(state, state)}）には行えない操作です。"
        )
    return new


STATE_LABELS: Final = {
    "waiting": "お待ち",
    "called": "呼出中",
    "serving": "対応中",
    "done": "完了",
    "absent": "不在",
    "cancelled": "取消",
    "transferred": "転送",
}


def label(prefix: str, number: int) -> str:
    """A-001 … A-999 (a thousandth ticket would read A-1000)."""
    if number < 1:
        raise ValueError("ticket numbers start at 1")
    return f"{prefix}-{number:03d}"


def day_of(now: float) -> dt.date:
    return dt.datetime.fromtimestamp(now, JST).date()


def clock_at(day: dt.date, hhmm: str) -> float:
    """Unix time of HH:MM on DAY in Japan time."""
    hour, minute = (int(x) for x in hhmm.split(":"))
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=JST).timestamp()


def is_open(now: float, opens_at: str, closes_at: str) -> bool:
    day = day_of(now)
    return clock_at(day, opens_at) <= now < clock_at(day, closes_at)


def day_end(now: float) -> float:
    """The end of NOW's day in Japan time (a QR token expires then)."""
    day = day_of(now) + dt.timedelta(days=1)
    return dt.datetime(day.year, day.month, day.day, tzinfo=JST).timestamp()


def is_priority(slot_start: float | None, arrived: float, grace_minutes: int) -> bool:
    """A booked resident arriving within GRACE minutes before or after their slot."""
    if slot_start is None:
        return False
    return abs(arrived - slot_start) <= grace_minutes * 60


@dataclass(frozen=True)
class Waiting:
    id: int
    number: int
    priority: bool


def order(waiting: Sequence[Waiting]) -> list[Waiting]:
    """Calling order: priority tickets by number, then the others by number."""
    return sorted(waiting, key=lambda w: (not w.priority, w.number))


def pick_next(waiting: Sequence[Waiting]) -> Waiting | None:
    ordered = order(waiting)
    return ordered[0] if ordered else None


def position(waiting: Sequence[Waiting], ticket_id: int) -> int | None:
    """How many tickets are ahead of TICKET_ID (0: next), None when it is not waiting."""
    for index, w in enumerate(order(waiting)):
        if w.id == ticket_id:
            return index
    return None


def estimate_minutes(
    ahead: int, service_seconds: Sequence[float], counters: int, default_minutes: float
) -> int:
    """Minutes until a ticket with AHEAD tickets before it is called: the median of the day's
    observed service times (the default until one is observed) per open counter, rounded up
    to 5 minutes (0 when it is next)."""
    if ahead <= 0:
        return 0
    per = statistics.median(service_seconds) / 60 if service_seconds else default_minutes
    minutes = ahead * per / max(1, counters)
    return max(5, int(-(-minutes // 5) * 5))


def position_text(ahead: int, minutes: int) -> str:
    if ahead == 0:
        return "次にお呼びします。窓口の近くでお待ちください。"
    return f"あと{ahead}人・約{minutes}分"


def call_text(ticket_label: str, counter: int) -> str:
    return f"{ticket_label}番の方、{counter}番窓口へお越しください。"


def near_text(ticket_label: str, ahead: int) -> str:
    return f"{ticket_label}番の方、まもなく順番です（あと{ahead}人）。窓口の近くでお待ちください。"


def new_token() -> str:
    """A one-time QR token: 128 random bits, URL-safe."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def qr_link(basic_id: str, token: str) -> str:
    """The LINE link in the kiosk's QR code: opens the chat with the token pre-filled."""
    return f"https://line.me/R/oaMessage/{quote(basic_id, safe='')}/?{quote(TOKEN_PREFIX + token)}"


def parse_token(text: str) -> str | None:
    """The token in a resident's message, if the message is the kiosk's pre-filled text."""
    text = text.strip()
    if not text.startswith(TOKEN_PREFIX.strip()):
        return None
    token = text[len(TOKEN_PREFIX.strip()) :].strip()
    if not token or len(token) > 64 or not all(c.isalnum() or c in "-_" for c in token):
        return None
    return token

"""Wire shapes of the same-day queue, re-exported by kairand.api.schema.

Nothing here can carry a person: tickets are a label (A-012), a service, a state, a counter
and times. The kiosk's QR link is returned once, to the kiosk that issued the ticket.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "QUEUE_ACTION_LABELS",
    "QUEUE_STATE_LABELS",
    "QueueAction",
    "QueueBoard",
    "QueueBoardService",
    "QueueCall",
    "QueueCalled",
    "QueueDesk",
    "QueueDeskService",
    "QueueIssue",
    "QueueIssued",
    "QueuePause",
    "QueueStatRow",
    "QueueStatistics",
    "QueueTicket",
]

QUEUE_STATE_LABELS = {
    "waiting": "お待ち",
    "called": "呼出中",
    "serving": "対応中",
    "done": "完了",
    "absent": "不在",
    "cancelled": "取消",
    "transferred": "転送",
}
QUEUE_ACTION_LABELS = {
    "recall": "再呼出",
    "serve": "対応開始",
    "done": "完了",
    "absent": "不在",
    "transfer": "転送",
    "cancel": "取消",
}


class _Out(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


Code = Annotated[str, Field(pattern=r"^[a-z0-9_]{1,32}$")]


class QueueIssue(_In):
    """POST /v1/queue/tickets (kiosk, or the desk for a resident at the window)."""

    service: Code


class QueueIssued(_Out):
    id: int
    label: str
    service: str
    service_name: str
    issued_at_unix: float
    ahead: int
    minutes: int
    qr_url: str | None = None
    """The LINE link with the one-time token (kiosk tickets, when a basic ID is configured)."""


class QueueTicket(_Out):
    id: int
    label: str
    service: str
    state: str
    channel: str
    line_linked: bool
    """The ticket will get pushes (no identity: just whether a LINE chat is tied to it)."""
    priority: bool
    counter: int | None
    recalls: int
    issued_at_unix: float
    called_at_unix: float | None


class QueueDeskService(_Out):
    code: str
    name: str
    prefix: str
    counters: list[int]
    waiting: list[QueueTicket]
    calling: list[QueueTicket]
    serving: list[QueueTicket]
    issued: int
    done: int
    absent: int
    minutes_per_ticket: float


class QueueDesk(_Out):
    """GET /v1/queue/desk."""

    day: str
    open: bool
    recall_limit: int
    paused_counters: list[int]
    services: list[QueueDeskService]


class QueueCalled(_Out):
    label: str
    counter: int
    service: str


class QueueBoardService(_Out):
    code: str
    name: str
    prefix: str
    waiting: int
    next: list[str]
    minutes_per_ticket: float


class QueueBoard(_Out):
    """GET /v1/queue/board and the `board` events of /v1/queue/board/events."""

    day: str
    open: bool
    opens_at: str
    closes_at: str
    calling: list[QueueCalled]
    services: list[QueueBoardService]


class QueueCall(_In):
    """POST /v1/queue/call: call the next ticket of SERVICE to COUNTER."""

    service: Code
    counter: Annotated[int, Field(ge=1, le=999)]


class QueueAction(_In):
    """POST /v1/queue/tickets/{id}/action."""

    action: Literal["recall", "serve", "done", "absent", "transfer", "cancel"]
    service: Code | None = None
    """The target service of a transfer."""


class QueuePause(_In):
    """POST /v1/queue/counters/{id}/pause."""

    paused: bool


class QueueStatRow(_Out):
    day: str
    hour: int
    service: str
    tickets: int | None
    """None: fewer than the small-cell threshold (suppressed)."""
    served: int | None
    absent: int | None
    cancelled: int | None
    wait_minutes_mean: float | None
    service_minutes_mean: float | None


class QueueStatistics(_Out):
    """GET /v1/queue/statistics?from=YYYY-MM-DD&to=YYYY-MM-DD (format=csv: UTF-8 with BOM)."""

    first: str
    last: str
    small_cell_threshold: int
    rows: list[QueueStatRow]

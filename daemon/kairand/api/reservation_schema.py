"""Staff API shapes for window reservations, re-exported by kairand.api.schema (the
only module the TUI may import)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from kairand.reservations.model import Catalogue, DayOverride, Period, Service

SlotKey = Annotated[str, Field(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}$")]
BookingState = Literal["active", "cancelled", "attended", "no_show"]
BOOKING_STATE_LABELS = {
    "active": "予約中",
    "cancelled": "取消",
    "attended": "来庁",
    "no_show": "不来庁",
}
CHANNEL_LABELS = {"line": "LINE", "phone": "電話"}


class _Out(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReservationServices(_Out):
    version: int
    catalogue: Catalogue


class ReservationServicesUpdate(_In):
    catalogue: Catalogue


class ReservationServicesUpdated(_Out):
    version: int


class DeskSlot(_Out):
    slot: str
    capacity: int
    taken: int


class DeskBooking(_Out):
    id: int
    number: str
    service: str
    slot: str
    state: BookingState
    channel: Literal["line", "phone"]
    name_kana: str | None
    """Shown only to the 窓口担当 role; every response carrying it is audited (S8)."""
    phone: str | None
    cancelled_by: str | None = None
    created_at: dt.datetime


class Desk(_Out):
    service: str
    service_name: str
    counter: str
    first: dt.date
    days: int
    slots: list[DeskSlot]
    bookings: list[DeskBooking]


class DeskQuery(_In):
    service: Annotated[str, Field(pattern=r"^[a-z0-9_]{1,24}$")] | None = None
    first: dt.date | None = None
    days: Annotated[int, Field(ge=1, le=14)] = 1
    state: BookingState | None = None


class PhoneBooking(_In):
    service: Annotated[str, Field(pattern=r"^[a-z0-9_]{1,24}$")]
    slot: SlotKey
    name_kana: Annotated[str, Field(min_length=1, max_length=60)]
    phone: Annotated[str, Field(min_length=1, max_length=30)]


class BookingChange(_In):
    slot: SlotKey


class BookingCancel(_In):
    reason: Annotated[str, Field(max_length=100)] = ""
    """Not shown to the resident; kept in the audit (no personal data, please)."""


class BookingOutcome(_In):
    outcome: Literal["attended", "no_show", "active"]


class ReservationStatsQuery(_In):
    first: dt.date | None = None
    last: dt.date | None = None
    format: Literal["json", "csv"] = "json"


class ReservationStatsLine(_Out):
    dimension: str
    dimension_label: str
    key: str
    label: str
    counts: dict[str, str]
    """Outcome → shown count ("<10" for a small cell)."""


class ReservationStats(_Out):
    first: dt.date
    last: dt.date
    small_cell_threshold: int
    lines: list[ReservationStatsLine]


__all__ = [
    "BOOKING_STATE_LABELS",
    "CHANNEL_LABELS",
    "BookingCancel",
    "BookingChange",
    "BookingOutcome",
    "BookingState",
    "Catalogue",
    "DayOverride",
    "Desk",
    "DeskBooking",
    "DeskQuery",
    "DeskSlot",
    "Period",
    "PhoneBooking",
    "ReservationServices",
    "ReservationServicesUpdate",
    "ReservationServicesUpdated",
    "ReservationStats",
    "ReservationStatsLine",
    "ReservationStatsQuery",
    "Service",
]

"""Irreversible masking (W7): overwrite chosen characters of a stored value in place.

`mask("ヤマダタロウ", keep=[0, 2])` -> "ヤ*ダ***" (kana name: 1st and 3rd characters kept);
`mask("090-1234-5678", keep=[-2, -1], preserve="-")` -> "***-****-**78" (phone: last 2 digits).
Pure; the store side (kairand.store.masking) rewrites the rows, and the caller checkpoints the
WAL so that no old page version survives in the database file (see docs/privacy-lifecycle.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


def mask(
    value: str,
    keep: Sequence[int],
    fill: str = "*",
    preserve: str = "",
    overwrite: Sequence[int] | None = None,
) -> str:
    """VALUE with every character replaced by FILL except those at the KEEP positions.

    Positions count only characters not in PRESERVE (separators such as "-" stay as they
    are and are not counted); negative positions count from the end. Positions outside the
    value are ignored. Masking a masked value changes nothing (idempotent).
    """
    if len(fill) != 1:
        raise ValueError("fill must be one character")
    candidates = [i for i, ch in enumerate(value) if ch not in preserve]

    def chosen(positions: Sequence[int]) -> set[int]:
        return {candidates[p] for p in positions if -len(candidates) <= p < len(candidates)}

    masked = chosen(overwrite) if overwrite is not None else set(candidates) - chosen(keep)
    return "".join(fill if i in masked else ch for i, ch in enumerate(value))


class MaskRule(BaseModel):
    """A masking rule as data: which stored column, which characters survive, and when."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    target: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$")]
    """A registered target "table.column" (kairand.store.masking.TARGETS)."""
    keep: tuple[int, ...] = ()
    overwrite: tuple[int, ...] | None = None
    """If set, only these positions are overwritten (and `keep` is ignored)."""
    fill: Annotated[str, Field(min_length=1, max_length=1)] = "*"
    preserve: str = ""
    after_months: Annotated[int, Field(ge=0, le=120)] = 3
    """Mask rows whose time column is at least this many months old (W7: 3 months)."""

    def apply(self, value: str) -> str:
        return mask(value, self.keep, self.fill, self.preserve, self.overwrite)


MASK_TARGET_LABELS = {
    "residents.display_name": "LINEの表示名",
    "reservations.name_kana": "予約者の氏名（カナ）",
    "reservations.phone": "予約者の電話番号",
    "reservation_bookings.name_kana": "予約者の氏名（カナ）",
    "reservation_bookings.phone": "予約者の電話番号",
    "reservation_contacts.name_kana": "予約用に保存した氏名（カナ）",
    "reservation_contacts.phone": "予約用に保存した電話番号",
}

KANA_NAME = MaskRule(target="reservations.name_kana", keep=(0, 2), fill="＊")
"""W7's kana-name rule, for the reservation module to come (its table does not exist yet)."""
PHONE = MaskRule(target="reservations.phone", keep=(-2, -1), preserve="-")
"""W7's phone rule: only the last two digits survive."""


# Seed 003 (W7): three months after the booking date, the kana name's 1st and 3rd
# characters and the phone's last 2 digits are overwritten in place. A stricter overwrite (e.g.
# keep=() for everything) is a configuration choice in the retention rules.
BOOKING_KANA = MaskRule(
    target="reservation_bookings.name_kana", overwrite=(0, 2), fill="＊", preserve=" "
)
BOOKING_PHONE = MaskRule(
    target="reservation_bookings.phone", overwrite=(-2, -1), fill="*", preserve="-"
)
CONTACT_KANA = BOOKING_KANA.model_copy(update={"target": "reservation_contacts.name_kana"})
CONTACT_PHONE = BOOKING_PHONE.model_copy(update={"target": "reservation_contacts.phone"})
RESERVATION_RULES = (BOOKING_KANA, BOOKING_PHONE, CONTACT_KANA, CONTACT_PHONE)

"""Small-cell suppression for attribute statistics (W4). Pure.

A cell below k is shown as "<k". Suppressing one cell of a table whose total is known would be
pointless (total − the others = the hidden value), so within a partition (cells that add up to
the total) further cells are suppressed, smallest first, until at least two are hidden and the
hidden cells together hold at least k — or everything is hidden.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cell:
    code: str
    label: str
    count: int


@dataclass(frozen=True)
class ShownCell:
    code: str
    label: str
    count: int | None
    display: str


def small(k: int) -> str:
    return f"<{k}"


def suppress(cells: list[Cell], k: int, *, partition: bool) -> list[ShownCell]:
    """PARTITION: the cells add up to a total that is shown elsewhere (a single-choice question
    with its 回答なし cell). Multi-select cells overlap, so only the primary rule applies."""
    hidden = {i for i, c in enumerate(cells) if c.count < k}
    if partition and hidden:
        order = sorted(range(len(cells)), key=lambda i: (cells[i].count, i))
        for i in order:
            hidden_sum = sum(cells[j].count for j in hidden)
            if len(hidden) >= 2 and hidden_sum >= k:
                break
            hidden.add(i)
    return [
        ShownCell(c.code, c.label, None, small(k))
        if i in hidden
        else ShownCell(c.code, c.label, c.count, str(c.count))
        for i, c in enumerate(cells)
    ]


def shown_total(total: int, k: int) -> str:
    return small(k) if total < k else str(total)


def mail_total(count: int, k: int, enabled: bool) -> str | None:
    """A count of mail subscribers as staff see it: "<K" below K, None when the mail
    channel is off and has nobody (the screens then show no mail line)."""
    return shown_total(count, k) if enabled or count else None

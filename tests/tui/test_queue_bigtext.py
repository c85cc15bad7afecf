"""The board's and kiosk's large ticket numbers for every prefix A–Z: Textual's
Digits for A–F, pyfiglet's box-drawing "future" font (the same three-row style) for G–Z."""

from __future__ import annotations

import string

import pytest
from textual.widgets import Digits, Static

from kairan_tui.bigtext import big_label, figlet


@pytest.mark.req("W3")
@pytest.mark.parametrize("prefix", list(string.ascii_uppercase))
def test_every_prefix_is_shown_large(prefix: str) -> None:
    label = f"{prefix}-012"
    widget = big_label(label)
    if prefix in "ABCDEF":
        assert isinstance(widget, Digits)
        return
    assert isinstance(widget, Static) and widget.has_class("figlet")
    rows = figlet(label).split("\n")
    assert len(rows) == 3 and len({len(r) for r in rows}) == 1
    assert set("".join(rows)) <= set(" ╸╹╺╻━┃┏┓┗┛┣┫┳┻╋")
    # The letter is drawn (not blank) and the number beside it is the same for every prefix.
    tail = figlet("-012").split("\n")
    assert all(
        row.endswith(t) and row[: -len(t)].strip() for row, t in zip(rows, tail, strict=True)
    )


def test_glyphs_match_textuals_digits_style() -> None:
    assert figlet("G-012").split("\n") == [
        "┏━╸   ┏━┓╺┓ ┏━┓",
        "┃╺┓╺━╸┃┃┃ ┃ ┏━┛",
        "┗━┛   ┗━┛╺┻╸┗━╸",
    ]
    assert big_label("受付").has_class("big")  # not drawable: plain text, styled by the caller

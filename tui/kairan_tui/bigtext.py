"""Large ticket numbers for the board and the kiosk, whatever the service's prefix (A–Z).

Textual's `Digits` draws 0–9 and A–F only. Other labels (G-012, …) are drawn by pyfiglet in
its "future" font: the same three-row, box-drawing style, so a board mixing prefixes looks
uniform. Anything neither can draw (not expected: prefixes are one letter A–Z) stays plain.
"""

from __future__ import annotations

import pyfiglet
from textual.widgets import Digits, Static

DIGIT_CHARS = frozenset("0123456789+-^x:ABCDEF")
FIGLET_CHARS = frozenset("0123456789-ABCDEFGHIJKLMNOPQRSTUVWXYZ")
FONT = "future"


def figlet(text: str) -> str:
    """TEXT in three rows of box-drawing characters (trailing blank rows dropped)."""
    rows = pyfiglet.figlet_format(text, font=FONT, width=1000).split("\n")
    while rows and not rows[-1].strip():
        rows.pop()
    width = max((len(r) for r in rows), default=0)
    return "\n".join(r.ljust(width) for r in rows)  # equal rows: centring keeps them aligned


def big_label(text: str, *, id: str | None = None, classes: str = "big") -> Digits | Static:
    """A widget showing TEXT in large type: Digits when it can, else the figlet rendering,
    else the plain text with CLASSES (styled bold by the caller's CSS)."""
    if set(text) <= DIGIT_CHARS:
        return Digits(text, id=id)
    if text and set(text) <= FIGLET_CHARS:
        return Static(figlet(text), id=id, classes="figlet")
    return Static(text, id=id, classes=classes)

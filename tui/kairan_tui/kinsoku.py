"""Japanese line breaking (禁則処理) for every text Kairan wraps itself.

Rules (JIS X 4051 in its common simplified form, as LINE's apps on the phone apply them):
- closing brackets, 。、 and friends, small kana and 「ー」 never start a line: they are pushed
  back onto the line before together with the character they follow (追い出し);
- opening brackets (「（『【) never end a line: they move to the next line with what follows;
- a run of Latin letters, digits and ASCII punctuation (a word, a URL, 「Ctrl+O」) stays whole
  where it fits; a run wider than the line is cut at the edge rather than clipped;
- line breaks in the text are kept.
Widths are terminal cells (a full-width character is 2).

A library was tried first: uniseg's UAX #14 wrapper gives the same breaks but took ~3 s for
1,000 characters (it is quadratic), far too slow to re-wrap a 5,000-character message preview
on every keystroke; these rules are linear and tested in tests/tui/test_kinsoku.py.
"""

from __future__ import annotations

import re
from functools import lru_cache

from rich.cells import cell_len

NO_LINE_START = frozenset(
    "。、，．,.）)」』】〕〉》］]｝}！!？?ゝゞー・：:；;ぁぃぅぇぉっゃゅょゎァィゥェォッャュョヮヵヶ～"
)
NO_LINE_END = frozenset("（(「『【〔〈《［[｛{")
_UNIT = re.compile(r"[!-~]+| +|.", re.DOTALL)
"""A run of printable ASCII (kept whole when it fits), a run of spaces, or one character."""


def _units(paragraph: str) -> list[str]:
    units: list[str] = []
    glue_next = False
    for match in _UNIT.finditer(paragraph):
        unit = match.group()
        if units and (glue_next or unit[0] in NO_LINE_START) and not unit.startswith(" "):
            units[-1] += unit
        else:
            units.append(unit)
        glue_next = unit[-1] in NO_LINE_END
    return units


def _cut(unit: str, width: int) -> list[str]:
    """A unit wider than the line, cut at cell boundaries (never starting a piece with a
    character that must not start a line, when that can be avoided)."""
    pieces: list[str] = []
    current = ""
    for char in unit:
        if current and cell_len(current + char) > width:
            carried = ""
            if char in NO_LINE_START and len(current) > 1:
                current, carried = current[:-1], current[-1]
            pieces.append(current)
            current = carried
        current += char
    pieces.append(current)
    return pieces


def _wrap_paragraph(paragraph: str, width: int) -> list[str]:
    lines: list[str] = []
    line = ""
    used = 0
    for unit in _units(paragraph):
        size = cell_len(unit)
        if used + size <= width:
            line += unit
            used += size
            continue
        if unit.isspace():  # spaces at a break disappear
            lines.append(line.rstrip(" "))
            line, used = "", 0
            continue
        if line:
            lines.append(line.rstrip(" "))
            line, used = "", 0
        if size > width:
            *full, line = _cut(unit, width)
            lines.extend(full)
            used = cell_len(line)
        else:
            line, used = unit, size
    lines.append(line.rstrip(" "))
    return lines


@lru_cache(maxsize=256)
def _wrap(text: str, width: int) -> tuple[str, ...]:
    lines: list[str] = []
    for paragraph in text.split("\n"):
        lines.extend(_wrap_paragraph(paragraph, width) if paragraph else [""])
    return tuple(lines)


def wrap(text: str, width: int) -> list[str]:
    """TEXT as lines of at most WIDTH cells, broken where Japanese typesetting allows."""
    return list(_wrap(text, max(width, 2)))


def width_of(text: str) -> int:
    """The widest line of TEXT in cells (unwrapped)."""
    return max((cell_len(line) for line in text.split("\n")), default=0)

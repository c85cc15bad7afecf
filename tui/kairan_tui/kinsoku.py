"""Japanese line breaking (禁則処理) for every text Kairan wraps itself.

Breaking opportunities come from the Unicode line breaking algorithm (UAX #14, via `uniseg`):
closing brackets and punctuation (。、）」) never start a line, opening brackets (「（) never end
one, and Latin words and URLs stay whole where they fit — the rules LINE's apps follow on the
phone. Widths are terminal cells (full-width characters are 2). A run that cannot be broken
and is wider than the line (a long URL) is cut at the edge rather than clipped.
"""

from __future__ import annotations

from rich.cells import cell_len
from uniseg.wrap import tt_wrap

# For the fallback cut only (UAX #14 handles every ordinary break): characters that must not
# start a line are pushed back together with the one before them (追い出し).
NO_LINE_START = frozenset(
    "。、，．）」』】〕〉》］｝！？ゝゞー・：；ぁぃぅぇぉっゃゅょゎァィゥェォッャュョヮヵヶ"
)


def _cut(line: str, width: int) -> list[str]:
    """Split LINE at cell boundaries so that no piece is wider than WIDTH."""
    pieces: list[str] = []
    current = ""
    for char in line:
        if current and cell_len(current + char) > width:
            carried = ""
            if char in NO_LINE_START and len(current) > 1:
                current, carried = current[:-1], current[-1]
            pieces.append(current)
            current = carried
        current += char
    pieces.append(current)
    return pieces


def wrap(text: str, width: int) -> list[str]:
    """TEXT as lines of at most WIDTH cells, broken where Japanese typesetting allows.

    Line breaks in TEXT are kept; an empty paragraph stays an empty line.
    """
    width = max(width, 2)
    lines: list[str] = []
    for paragraph in text.split("\n"):
        wrapped = [line.rstrip(" ") for line in tt_wrap(paragraph, width)] if paragraph else []
        if not wrapped:
            lines.append("")
            continue
        for line in wrapped:
            lines.extend(_cut(line, width) if cell_len(line) > width else [line])
    return lines


def width_of(text: str) -> int:
    """The widest line of TEXT in cells (unwrapped)."""
    return max((cell_len(line) for line in text.split("\n")), default=0)

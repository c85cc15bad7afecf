"""Printable PDF documents (certificates, the handling report) with reportlab and a Japanese
font from a Debian package (fonts-ipaexfont: IPAexGothic / IPAexMincho, embedded as subsets).

Documents are built from a list of blocks, and rendered with reportlab's `invariant` mode, so
the same blocks give the same bytes (no creation date, no random document id). The signature
is kairand.reports.signing.sign_pdf (a trailer comment after %%EOF that PDF readers ignore).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER, TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from kairand.errors import ConfigError

FONT_CANDIDATES = {
    "gothic": (
        Path("/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf"),
        Path("/usr/share/fonts/truetype/ipaexfont-gothic/ipaexg.ttf"),
    ),
    "mincho": (
        Path("/usr/share/fonts/opentype/ipaexfont-mincho/ipaexm.ttf"),
        Path("/usr/share/fonts/truetype/ipaexfont-mincho/ipaexm.ttf"),
    ),
}
_REGISTERED: dict[str, str] = {}


@dataclass(frozen=True)
class Block:
    """One piece of a document: kind is title | heading | para | small | right | table | space."""

    kind: str
    text: str = ""
    rows: Sequence[Sequence[str]] = field(default_factory=tuple)
    widths: Sequence[float] = field(default_factory=tuple)  # table column widths in mm


def _font(kind: str) -> str:
    if kind in _REGISTERED:
        return _REGISTERED[kind]
    for path in FONT_CANDIDATES[kind]:
        if path.exists():
            name = "IPAexGothic" if kind == "gothic" else "IPAexMincho"
            pdfmetrics.registerFont(TTFont(name, str(path)))
            _REGISTERED[kind] = name
            return name
    raise ConfigError(
        "no Japanese font for PDF documents (IPAex fonts not installed)",
        "install the Debian package: sudo apt-get install fonts-ipaexfont",
    )


def render_pdf(blocks: Sequence[Block], *, title: str, author: str, subject: str = "") -> bytes:
    """A4 portrait PDF of BLOCKS; the same input always gives the same bytes."""
    gothic, mincho = _font("gothic"), _font("mincho")
    base = ParagraphStyle("base", fontName=mincho, fontSize=10.5, leading=16, wordWrap="CJK")
    styles = {
        "title": ParagraphStyle(
            "title", parent=base, fontName=gothic, fontSize=18, leading=26, alignment=TA_CENTER
        ),
        "heading": ParagraphStyle(
            "heading", parent=base, fontName=gothic, fontSize=12, leading=18, spaceBefore=8
        ),
        "para": base,
        "small": ParagraphStyle("small", parent=base, fontSize=8, leading=11),
        "right": ParagraphStyle("right", parent=base, alignment=TA_RIGHT),
        "cell": ParagraphStyle("cell", parent=base, fontSize=9, leading=12),
    }
    story: list[object] = []
    for block in blocks:
        if block.kind == "space":
            story.append(Spacer(1, 4 * mm))
        elif block.kind == "table":
            data = [
                [Paragraph(_escape(cell), styles["cell"]) for cell in row] for row in block.rows
            ]
            widths = [w * mm for w in block.widths] if block.widths else None
            table = Table(data, colWidths=widths, repeatRows=1)
            table.setStyle(
                TableStyle(
                    [
                        ("GRID", (0, 0), (-1, -1), 0.4, colors.black),
                        ("BACKGROUND", (0, 0), (-1, 0), colors.Color(0.9, 0.9, 0.9)),
                        ("VALIGN", (0, 0), (-1, -1), "TOP"),
                    ]
                )
            )
            story.append(table)
        else:
            for line in block.text.split("\n"):
                story.append(Paragraph(_escape(line) or "&nbsp;", styles[block.kind]))
    out = io.BytesIO()
    doc = SimpleDocTemplate(
        out,
        pagesize=A4,
        leftMargin=20 * mm,
        rightMargin=20 * mm,
        topMargin=18 * mm,
        bottomMargin=18 * mm,
        title=title,
        author=author,
        subject=subject,
        creator="Kairan",
        producer="Kairan (reportlab)",
        invariant=1,
    )

    def footer(canvas: object, document: object) -> None:
        canvas.saveState()  # type: ignore[attr-defined]
        canvas.setFont(gothic, 8)  # type: ignore[attr-defined]
        page = canvas.getPageNumber()  # type: ignore[attr-defined]
        canvas.drawCentredString(A4[0] / 2, 10 * mm, f"{title}　{page}ページ")  # type: ignore[attr-defined]
        canvas.restoreState()  # type: ignore[attr-defined]

    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return out.getvalue()


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

"""The visible text of a PDF Kairan made (for tests): pypdf extracts it through the embedded
font subsets' ToUnicode maps, so Japanese comes back as written."""

from __future__ import annotations

import io

from pypdf import PdfReader


def pdf_text(data: bytes) -> str:
    reader = PdfReader(io.BytesIO(data))
    return "\n".join(page.extract_text() or "" for page in reader.pages)

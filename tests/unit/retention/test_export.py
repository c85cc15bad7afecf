"""Statistics export (K6, S17, W4): small cells suppressed, complementary suppression, decades."""

from __future__ import annotations

import csv
import io

import pytest

from kairand.conversation.survey import default_survey
from kairand.reports.export import cells_for, stats_csv, suppress


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ([50, 40, 30], [False, False, False]),
        ([50, 40, 3], [False, True, True]),  # one small cell: the next smallest goes too
        ([50, 4, 3], [False, True, True]),
        ([0, 40, 30], [True, False, True]),  # zero is hidden like any small count
        ([5], [True]),
    ],
)
def test_suppress(counts: list[int], expected: list[bool]) -> None:
    """W4, K6: cells below 10 are hidden, and never exactly one per question."""
    assert suppress(counts, 10) == expected


def test_stats_csv_excel_and_suppression() -> None:
    """K6, S17: UTF-8 BOM + CRLF for Japanese Excel; aggregates only; '<10' for small cells;
    years shown only by decade."""
    survey = default_survey()
    counts = [
        ("gender", "female", 60),
        ("gender", "male", 55),
        ("gender", "other", 4),
        ("area", "honmachi", 30),
    ]
    years = {"birth_year": [(1975, 5), (1985, 7), (1987, 9), (1990, 3), (2001, 20)]}
    cells = cells_for(survey, counts, years)
    text, rows = stats_csv(cells, {"gender": 119, "area": 30, "birth_year": 44}, 120, 10)
    assert text.startswith("\ufeff") and "\r\n" in text and "\n" not in text.replace("\r\n", "")
    table = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert len(table) == rows + 1
    by_key = {(r[1], r[3]): r[4] for r in table[1:]}
    assert by_key[("gender", "female")] == "60"
    assert by_key[("gender", "other")] == "<10"
    assert by_key[("gender", "male")] == "<10"  # complementary: 119 - 60 would reveal it
    assert by_key[("birth_year", "1980s")] == "16"
    assert by_key[("birth_year", "1990s")] == "<10"
    assert by_key[("birth_year", "1970s")] == "<10"
    assert ("birth_year", "1985") not in by_key
    assert table[1][4] == "120"

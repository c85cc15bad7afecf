"""Exports (K6, S17, W4): aggregate statistics as CSV that Japanese Excel opens as it is
(UTF-8 with BOM, CRLF), with small cells suppressed; the personal export exists only when an
administrator enables `privacy.allow_personal_export`, and every export is audited with its
row count.

Suppression: a count below the threshold (config.privacy.small_cell_threshold) is shown as
"<N". Complementary suppression: within a question whose respondent total is shown, a single
suppressed cell could be recovered by subtraction, so the next smallest cell is suppressed too.
Year answers are shown only as decades, never single years.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from kairand.conversation.survey import SurveyDefinition

BOM = "\ufeff"


@dataclass(frozen=True)
class Cell:
    question: str
    question_title: str
    option: str
    option_label: str
    count: int


def suppress(counts: Sequence[int], threshold: int, total_shown: bool = True) -> list[bool]:
    """Which cells to hide: every cell below THRESHOLD, plus complementary cells so that no
    hidden cell can be derived from the total (at least two hidden, or none)."""
    hidden = [c < threshold for c in counts]
    if total_shown and sum(hidden) == 1 and len(counts) > 1:
        visible = sorted((c, i) for i, c in enumerate(counts) if not hidden[i])
        hidden[visible[0][1]] = True
    return hidden


def cells_for(
    survey: SurveyDefinition,
    answer_counts: Iterable[tuple[str, str, int]],
    year_counts: dict[str, list[tuple[int, int]]],
) -> list[Cell]:
    """Every option of every question (0 where nobody chose it), years banded by decade."""
    by_question: dict[str, dict[str, int]] = defaultdict(dict)
    for question, value, count in answer_counts:
        by_question[question][value] = count
    cells: list[Cell] = []
    for q in survey.questions:
        if q.kind in ("choice", "multi"):
            known = {o.code for o in q.options}
            for option in q.options:
                cells.append(
                    Cell(
                        q.code,
                        q.title,
                        option.code,
                        option.label,
                        by_question[q.code].get(option.code, 0),
                    )
                )
            for value, count in sorted(by_question[q.code].items()):
                if value not in known:  # e.g. "skip" or a retired option
                    label = "回答しない" if value == "skip" else value
                    cells.append(Cell(q.code, q.title, value, label, count))
        else:
            decades: dict[int, int] = defaultdict(int)
            for year, count in year_counts.get(q.code, []):
                decades[year // 10 * 10] += count
            for decade in sorted(decades):
                cells.append(Cell(q.code, q.title, f"{decade}s", f"{decade}年代", decades[decade]))
    return cells


def stats_csv(
    cells: Sequence[Cell], respondents: dict[str, int], registered: int, threshold: int
) -> tuple[str, int]:
    """The CSV text (BOM + CRLF) and its number of data rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["質問", "質問コード", "選択肢", "選択肢コード", "人数"])
    small = f"<{threshold}"
    rows = 0
    writer.writerow(["登録者数", "", "", "", registered if registered >= threshold else small])
    rows += 1
    by_question: dict[str, list[Cell]] = defaultdict(list)
    for cell in cells:
        by_question[cell.question].append(cell)
    for question, group in by_question.items():
        total = respondents.get(question, 0)
        total_shown = total >= threshold
        hidden = suppress([c.count for c in group], threshold, total_shown)
        if not total_shown:
            hidden = [True] * len(group)
        writer.writerow(
            [group[0].question_title, question, "（回答者数）", "", total if total_shown else small]
        )
        rows += 1
        for cell, hide in zip(group, hidden, strict=True):
            writer.writerow(
                [
                    cell.question_title,
                    question,
                    cell.option_label,
                    cell.option,
                    small if hide else cell.count,
                ]
            )
            rows += 1
    return BOM + buffer.getvalue(), rows


PERSONAL_HEADER = ["登録者番号", "LINEユーザーID", "友だち追加日時", "登録完了日時", "回答"]


def personal_csv(rows: Iterable[Sequence[object]]) -> tuple[str, int]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(PERSONAL_HEADER)
    count = 0
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])
        count += 1
    return BOM + buffer.getvalue(), count

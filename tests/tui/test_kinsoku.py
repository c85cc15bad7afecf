"""Japanese line breaking (禁則処理) of every text Kairan wraps."""

from __future__ import annotations

import pytest
from rich.cells import cell_len

from kairan_tui.kinsoku import wrap

NO_START = "。、）」』】，．！？ぁぃぅぇぉっゃゅょー"
NO_END = "（「『【"

SAMPLES = [
    "【子育て】12月の子育て広場は駅前地区センターで毎週水曜日10時からです。申込は不要です。"
    "お気軽にお越しください。",
    "テスト送信先が登録されていません。「テスト送信先の登録」（Ctrl+O）からご自身のLINEを"
    "登録してください。",
    "11月30日（日）9時から、市内一斉の防災訓練を行います。サイレンが鳴りますが、訓練ですので"
    "ご安心ください。",
]


@pytest.mark.req("N5")
@pytest.mark.parametrize("width", [8, 11, 14, 17, 20, 23, 30, 41])
@pytest.mark.parametrize("text", SAMPLES)
def test_no_line_starts_with_closing_punctuation(text, width):
    """N5: 。、）」 and small kana never start a line, 「（ never end one; every line fits the
    width and nothing is lost."""
    lines = wrap(text, width)
    assert "".join(lines) == text
    for number, line in enumerate(lines):
        assert cell_len(line) <= width, (line, width)
        if number > 0:
            assert line[0] not in NO_START, (lines, width)
        if number < len(lines) - 1:
            assert line[-1] not in NO_END, (lines, width)


def test_the_reported_break_is_fixed():
    """The issue's example: 「。申込は不要です。」 must not appear as a line."""
    text = "十時からです。申込は不要です。"
    # Width 12 cells = 6 full-width characters: a naive cut would put 。 first on line 2.
    naive = [text[i : i + 6] for i in range(0, len(text), 6)]
    assert any(line.startswith("。") for line in naive)
    assert not any(line.startswith("。") for line in wrap(text, 12))


def test_line_breaks_kept_and_long_runs_cut():
    assert wrap("一行目\n\n三行目", 20) == ["一行目", "", "三行目"]
    url = "https://www.city.example.lg.jp/kosodate/hiroba/index.html"
    lines = wrap(f"詳しくは {url} をご覧ください。", 20)
    assert all(cell_len(line) <= 20 for line in lines)
    assert "".join(lines).replace(" ", "") == f"詳しくは{url}をご覧ください。"
    assert wrap("", 10) == [""]

"""Masking rule (W7), pure: which characters survive, and nothing else does."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kairand.retention.masking import KANA_NAME, PHONE, MaskRule, mask
from kairand.store.masking import MaskTarget


@pytest.mark.parametrize(
    ("value", "keep", "preserve", "expected"),
    [
        ("ヤマダタロウ", [0, 2], "", "ヤ*ダ***"),
        ("ヤマ", [0, 2], "", "ヤ*"),
        ("", [0], "", ""),
        ("090-1234-5678", [-2, -1], "-", "***-****-**78"),
        ("09012345678", [-2, -1], "", "*********78"),
        ("abc", [], "", "***"),
    ],
)
def test_mask_table(value: str, keep: list[int], preserve: str, expected: str) -> None:
    """W7: kana name keeps 1st and 3rd characters; phone keeps its last 2 digits."""
    assert mask(value, keep, preserve=preserve) == expected


def test_w7_rules() -> None:
    """W7: the shipped rules for the reservation module."""
    assert KANA_NAME.apply("スズキハナコ") == "ス＊キ＊＊＊"
    assert PHONE.apply("080-1111-2299") == "***-****-**99"
    assert KANA_NAME.after_months == 3


def test_bad_fill_and_identifiers_refused() -> None:
    """W7: a mask target's names must be plain identifiers (they are put into SQL)."""
    with pytest.raises(ValueError):
        mask("x", [0], fill="**")
    with pytest.raises(ValueError):
        MaskTarget("reservations; DROP TABLE x", "id", "phone", "at")
    with pytest.raises(ValueError):
        MaskRule(target="no-dots-here")


@given(
    value=st.text(min_size=0, max_size=30),
    keep=st.lists(st.integers(-40, 40), max_size=4),
    preserve=st.sampled_from(["", "-", "- "]),
)
def test_mask_properties(value: str, keep: list[int], preserve: str) -> None:
    """W7: same length; kept and preserved characters unchanged; every other character is the
    fill; masking twice equals masking once (irreversible: no other original survives)."""
    masked = mask(value, keep, fill="\x00", preserve=preserve)
    assert len(masked) == len(value)
    assert mask(masked, keep, fill="\x00", preserve=preserve) == masked
    candidates = [i for i, ch in enumerate(value) if ch not in preserve]
    kept = {candidates[k] for k in keep if -len(candidates) <= k < len(candidates)}
    for i, (before, after) in enumerate(zip(value, masked, strict=True)):
        if before in preserve or i in kept:
            assert after == before
        else:
            assert after == "\x00"

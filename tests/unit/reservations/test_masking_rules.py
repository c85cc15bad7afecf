"""Seed 003's W7 positions: the kana name's 1st and 3rd characters and the phone's last 2
digits are the ones overwritten (MaskRule.overwrite); stricter rules stay possible (keep)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kairand.reservations.contact import is_masked, normalise_kana
from kairand.retention.masking import BOOKING_KANA, BOOKING_PHONE, MaskRule


@pytest.mark.req("W7")
@pytest.mark.parametrize(
    ("rule", "value", "masked"),
    [
        (BOOKING_KANA, "スイタ ハナコ", "＊イ＊ ハナコ"),
        (BOOKING_KANA, "アイ", "＊イ"),
        (BOOKING_KANA, "ア", "＊"),
        (BOOKING_PHONE, "090-1234-5678", "090-1234-56**"),
        (BOOKING_PHONE, "06-6384-1231", "06-6384-12**"),
        (MaskRule(target="reservation_bookings.phone", keep=()), "090-1234-5678", "*" * 13),
    ],
)
def test_seed_positions_are_overwritten(rule: MaskRule, value: str, masked: str) -> None:
    assert rule.apply(value) == masked
    assert rule.apply(masked) == masked  # idempotent


@given(st.from_regex(r"[ァ-ヶ]{1,10}( [ァ-ヶ]{1,10})?", fullmatch=True))
def test_a_masked_name_is_recognised_and_never_valid_input(name: str) -> None:
    masked = BOOKING_KANA.apply(name)
    assert masked != name and is_masked(masked)
    assert not isinstance(normalise_kana(masked), str)

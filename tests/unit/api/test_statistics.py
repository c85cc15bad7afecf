"""Attribute statistics with small-cell suppression (W4): no cell below k is shown, and no
suppressed cell can be derived from the total and the shown cells."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kairand.api.client import ApiClient
from kairand.api.statistics import Cell, suppress
from kairand.store.database import Store
from tests.support.api_helpers import add_answers, add_residents

K = 10


@given(st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=12))
def test_partition_suppression_hides_enough(counts: list[int]) -> None:
    """W4: in a partition, every shown cell is ≥ k, and hidden cells are either none, or at
    least two holding at least k together, or all of them — so total − shown reveals nothing
    smaller than k about any single hidden cell."""
    cells = [Cell(f"c{i}", f"c{i}", n) for i, n in enumerate(counts)]
    shown = suppress(cells, K, partition=True)
    hidden = [c for c, s in zip(cells, shown, strict=True) if s.count is None]
    for c, s in zip(cells, shown, strict=True):
        if s.count is not None:
            assert s.count == c.count >= K and s.display == str(c.count)
        else:
            assert s.display == f"<{K}"
    assert (
        not hidden
        or len(hidden) == len(cells)
        or (len(hidden) >= 2 and sum(c.count for c in hidden) >= K)
    )


@given(st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=12))
def test_multi_select_suppresses_small_cells_only(counts: list[int]) -> None:
    """W4: overlapping (multi-select) cells hide exactly the cells below k."""
    cells = [Cell(f"c{i}", f"c{i}", n) for i, n in enumerate(counts)]
    shown = suppress(cells, K, partition=False)
    assert [s.count is None for s in shown] == [n < K for n in counts]


async def test_statistics_endpoint_suppresses_small_and_complementary_cells(
    api: ApiClient, store: Store
) -> None:
    """W4: 40 registered residents, area honmachi 25, ekimae 12, kitamachi 3 (no 回答なし):
    kitamachi is < 10 and hidden; hiding only it would let 40 − 25 − 12 = 3 be derived, so the
    next smallest cells are hidden until the hidden ones hold at least k. Years come in
    decades; one unregistered follower is never counted."""
    ids = add_residents(store, 40)
    add_residents(store, 1, start=100, registered=False)
    areas = ["honmachi"] * 25 + ["ekimae"] * 12 + ["kitamachi"] * 3
    add_answers(store, [(rid, "area", a, None) for rid, a in zip(ids, areas, strict=True)])
    years = [1985] * 20 + [1992] * 15 + [2001] * 5
    add_answers(store, [(rid, "birth_year", str(y), y) for rid, y in zip(ids, years, strict=True)])
    add_answers(store, [(rid, "topics", "bousai", None) for rid in ids[:11]])
    add_answers(store, [(rid, "topics", "kosodate", None) for rid in ids[:4]])

    r = await api.as_user("aud").get("/v1/statistics")
    assert r.status == 200
    assert r.body["registered_display"] == "40" and r.body["threshold"] == K
    by_q = {q["code"]: {c["code"]: c for c in q["cells"]} for q in r.body["questions"]}

    area = by_q["area"]
    assert area["honmachi"]["count"] == 25
    assert area["kitamachi"]["display"] == "<10" and area["kitamachi"]["count"] is None
    assert area["ekimae"]["count"] is None  # complementary suppression
    hidden = [c for c in area.values() if c["count"] is None]
    shown_sum = sum(c["count"] for c in area.values() if c["count"] is not None)
    assert 40 - shown_sum >= K and len(hidden) >= 2

    birth = by_q["birth_year"]
    assert birth["1980s"]["count"] == 20 and birth["2000s"]["display"] == "<10"
    # 2000s (5) and 回答なし (0) hold only 5 together: 1990s (15) is hidden as well.
    assert birth["1990s"]["display"] == "<10" and birth["_none"]["display"] == "<10"

    topics = by_q["topics"]
    assert topics["bousai"]["count"] == 11 and topics["kosodate"]["display"] == "<10"
    for question in r.body["questions"]:
        for cell in question["cells"]:
            assert cell["count"] is None or cell["count"] >= K


async def test_statistics_of_a_tiny_population_show_nothing(api: ApiClient, store: Store) -> None:
    """W4: with fewer than k registered residents every cell and the total are "<10"."""
    ids = add_residents(store, 7)
    add_answers(store, [(rid, "gender", "female", None) for rid in ids])
    r = await api.as_user("aut").get("/v1/statistics")
    assert r.body["registered_display"] == "<10"
    assert all(c["count"] is None for q in r.body["questions"] for c in q["cells"])

"""Attribute statistics with small-cell suppression (W4): no cell below k is shown, and no
suppressed cell can be derived from the total and the shown cells."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kairand.api.client import ApiClient
from kairand.api.statistics import Cell, suppress
from kairand.store import mail as mail_store
from kairand.store.database import Connection, Store
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


def _mail_subscribers(store: Store, areas: list[str]) -> list[str]:
    """Registered mail subscribers who answered the city survey by mail (area, birth year), and
    one still answering (never counted); their addresses."""
    addresses = [f"hogosha{i}@example.net" for i in range(len(areas) + 1)]

    def tx(conn: Connection) -> None:
        for n, (address, area) in enumerate(zip(addresses, [*areas, "ekimae"], strict=True)):
            mail_store.save(
                conn, address, stage="registered" if n < len(areas) else "asking",
                stop_token=f"token-{n:02d}-0123456789", confirm_code=None, attempts=0,
                question=0,
                answers={"area": (area,), "birth_year": ("1985" if n < 15 else "1992",),
                         "topics": ()},
                now=1,
            )  # fmt: skip

    store.write_sync(tx)
    return addresses


@pytest.mark.req("K9")
@pytest.mark.req("W4")
async def test_statistics_and_dashboard_count_mail_subscribers_apart(
    api: ApiClient, store: Store
) -> None:
    """The dashboard and the statistics give the mail subscribers' total apart from
    LINE's, suppressed below k; ?channel=mail counts their answers to the same survey, with the
    same suppression (a skipped question is 回答なし). No address anywhere."""
    add_residents(store, 3)
    addresses = _mail_subscribers(store, ["honmachi"] * 15 + ["ekimae"] * 11 + ["kitamachi"] * 2)

    line = await api.as_user("aud").get("/v1/statistics")
    assert line.status == 200, line.body
    assert line.body["registered_display"] == "<10"  # 3 LINE residents
    assert line.body["registered_mail_display"] == "28" and line.body["channel"] == "line"

    r = await api.as_user("aud").get("/v1/statistics?channel=mail")
    assert r.status == 200, r.body
    assert r.body["channel"] == "mail"
    by_q = {q["code"]: {c["code"]: c for c in q["cells"]} for q in r.body["questions"]}
    area = by_q["area"]
    assert area["honmachi"]["count"] == 15
    # kitamachi 2 (the one still answering is not in) is hidden, and ekimae 11 with it.
    assert area["kitamachi"]["display"] == "<10" and area["ekimae"]["count"] is None
    assert by_q["birth_year"]["1980s"]["count"] == 15  # years in decades
    assert by_q["topics"]["_none"]["count"] == 28  # skipped by mail: 回答なし
    for question in r.body["questions"]:
        for cell in question["cells"]:
            assert cell["count"] is None or cell["count"] >= K

    bad = await api.as_user("aud").get("/v1/statistics?channel=fax")
    assert bad.status == 400 and bad.body["field"] == "channel"

    dashboard = await api.as_user("aud").get("/v1/dashboard")
    assert dashboard.body["registered"] == 3 and dashboard.body["registered_mail"] == "28"
    for body in (line.body, r.body, dashboard.body):
        assert not any(a in str(body) for a in addresses)


@pytest.mark.req("K9")
async def test_without_the_mail_channel_no_mail_figure_is_given(
    api: ApiClient, store: Store
) -> None:
    """Mail off and nobody registered by mail: no mail line (None), not "<10"; a few mail
    subscribers left from before are shown suppressed."""
    add_residents(store, 12)
    assert (await api.as_user("aud").get("/v1/dashboard")).body["registered_mail"] is None
    assert (await api.as_user("aud").get("/v1/statistics")).body["registered_mail_display"] is None
    _mail_subscribers(store, ["honmachi"] * 2)
    assert (await api.as_user("aud").get("/v1/dashboard")).body["registered_mail"] == "<10"

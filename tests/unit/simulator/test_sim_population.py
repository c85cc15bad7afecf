"""Seeded synthetic residents: reproducible, LINE-shaped ids, realistic mix."""

from __future__ import annotations

import re
from collections import Counter

from kairand.simulator.population import (
    AGE_PYRAMID,
    Municipality,
    Population,
    Resident,
    line_use_share,
)


def test_same_seed_same_population_different_seed_different() -> None:
    """S5: a seeded population reproduces exactly (ids, traits, temperament)."""
    a, b, c = Population(300, seed=5), Population(300, seed=5), Population(300, seed=6)
    assert a.residents == b.residents
    assert [r.user_id for r in a] != [r.user_id for r in c]


def test_ids_are_line_shaped_and_unique() -> None:
    """S5: U + 32 lowercase hex, unique, looked up by id."""
    pop = Population(2000, seed=1)
    ids = [r.user_id for r in pop]
    assert all(re.fullmatch(r"U[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == len(ids)
    assert pop.get(ids[7]) is pop[7] and ids[7] in pop


def test_age_mix_follows_the_weighted_pyramid() -> None:
    """S5: the share of residents 60+ matches the pyramid weighted by LINE use (±3 points)."""
    pop = Population(5000, seed=2)
    weights = {lo: m * line_use_share(lo) for lo, _, m in AGE_PYRAMID}
    expected = sum(w for lo, w in weights.items() if lo >= 60) / sum(weights.values())
    observed = sum(r.age >= 60 for r in pop) / len(pop)
    assert abs(observed - expected) < 0.03
    assert all(15 <= r.age <= 99 for r in pop)


def test_topic_interests_correlate_with_age() -> None:
    """S5: 子育て is far more common at 25-45, 高齢者・介護 at 60+."""
    pop = Population(4000, seed=3)
    young = [r for r in pop if 25 <= r.age <= 45]
    old = [r for r in pop if r.age >= 60]

    def share(group: list[Resident], topic: str) -> float:
        return sum(topic in r.interests for r in group) / len(group)

    assert share(young, "子育て") > 3 * share(old, "子育て")
    assert share(old, "高齢者・介護") > 3 * share(young, "高齢者・介護")


def test_areas_come_from_the_municipality_with_their_weights() -> None:
    """S5: a configurable municipality; the heaviest area is the most populated."""
    town = Municipality(name="やまなみ町", areas=(("本町", 5.0), ("川沿い", 1.0)))
    counts = Counter(r.area for r in Population(1000, seed=4, municipality=town))
    assert set(counts) == {"本町", "川沿い"}
    assert counts["本町"] > 3 * counts["川沿い"]
    genders = Counter(r.gender for r in Population(1000, seed=4))
    assert set(genders) == {"male", "female"}

"""A seeded population of synthetic residents for a configurable municipality.

Ages follow a Japanese city's age pyramid (2020 census shape, ages 15+) weighted by LINE use per
age group; the gender mix tilts female with age; topic interests correlate with age (子育て for
25-45, 高齢者・介護 for 60+ and for 45-64 caring for parents, ...). The same seed and size give the
same residents, ids included.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass, replace

# (age from, age to inclusive, people in millions) — Japan, 2020 census, rounded.
AGE_PYRAMID: tuple[tuple[int, int, float], ...] = (
    (15, 19, 5.7),
    (20, 24, 6.3),
    (25, 29, 6.3),
    (30, 34, 6.8),
    (35, 39, 7.6),
    (40, 44, 8.6),
    (45, 49, 9.8),
    (50, 54, 8.8),
    (55, 59, 7.9),
    (60, 64, 7.4),
    (65, 69, 8.2),
    (70, 74, 9.6),
    (75, 79, 7.1),
    (80, 84, 5.4),
    (85, 89, 3.7),
    (90, 99, 2.5),
)


def line_use_share(age: int) -> float:
    """Rough share of an age group that uses LINE (smartphone survey shape)."""
    if age < 60:
        return 0.92
    if age < 70:
        return 0.8
    if age < 80:
        return 0.6
    return 0.35


TOPICS: tuple[str, ...] = (
    "子育て",
    "高齢者・介護",
    "健康・医療",
    "防災・防犯",
    "イベント",
    "ごみ・環境",
)


def topic_probability(topic: str, age: int) -> float:
    """Probability that a resident of `age` wants information on `topic`."""
    if topic == "子育て":
        return 0.7 if 25 <= age <= 45 else 0.25 if 46 <= age <= 55 else 0.05
    if topic == "高齢者・介護":
        return 0.7 if age >= 60 else 0.35 if age >= 45 else 0.05
    if topic == "健康・医療":
        return min(0.85, 0.2 + age / 120)
    if topic == "防災・防犯":
        return 0.45
    if topic == "イベント":
        return 0.5 if age < 40 else 0.35 if age < 65 else 0.2
    if topic == "ごみ・環境":
        return 0.3
    return 0.15


SURNAMES = (
    "佐藤",
    "鈴木",
    "高橋",
    "田中",
    "伊藤",
    "渡辺",
    "山本",
    "中村",
    "小林",
    "加藤",
    "吉田",
    "山田",
    "佐々木",
    "山口",
    "松本",
    "井上",
    "木村",
    "林",
    "斎藤",
    "清水",
)
GIVEN_FEMALE = ("陽菜", "結衣", "美咲", "さくら", "由美子", "恵子", "和子", "直美", "愛", "花子")
GIVEN_MALE = ("蓮", "大翔", "翔太", "健一", "誠", "浩", "隆", "一郎", "拓也", "太郎")


@dataclass(frozen=True, slots=True)
class Municipality:
    name: str = "みなと市"
    # area name -> relative population weight. The names are those of the sample survey in
    # kairand.conversation.survey, so demo residents find their area there; a trainer running
    # another survey passes its areas (kairan-sim --areas).
    areas: tuple[tuple[str, float], ...] = (
        ("本町", 3.0),
        ("駅前", 2.5),
        ("北町", 1.5),
        ("南町", 1.5),
        ("東町", 1.2),
        ("西町", 1.2),
        ("川辺", 0.8),
        ("山手", 0.8),
        ("新町", 1.0),
        ("旭", 0.6),
        ("緑ヶ丘", 0.9),
        ("桜台", 0.9),
        ("若葉", 0.7),
        ("港", 0.8),
        ("青葉台", 0.9),
    )
    topics: tuple[str, ...] = TOPICS
    school_districts: tuple[tuple[str, str], ...] = ()
    """(小学校区, 中学校区) names of a child-safety program; empty: no guardians register."""
    program_keyword: str = "子ども安全情報"
    """What a guardian sends to open the program's registration (a rich-menu tile's text)."""

    @property
    def area_names(self) -> tuple[str, ...]:
        return tuple(a for a, _ in self.areas)


@dataclass(frozen=True, slots=True)
class Resident:
    """One synthetic resident's traits and temperament. Never a real person."""

    index: int
    user_id: str
    display_name: str
    birth_date: dt.date
    age: int
    gender: str  # "male" | "female"
    states_gender: bool  # False: answers 回答しない when asked
    area: str
    interests: tuple[str, ...]
    consents: bool  # accepts the purpose notice
    abandon_rate: float  # chance to stop answering at each question
    settings_change_rate: float  # chance to tap 「設定を変更」 after finishing
    block_rate: float  # chance to block the account on each push/multicast received
    language: str = "ja"
    picture_url: str | None = None
    status_message: str | None = None
    seed: int = 0
    school_district: str = ""
    """A guardian's (or a neighbour's) elementary school district; empty: not registering."""
    junior_high: str = ""
    relation: str = ""
    """How a registering resident describes themselves to the program: 保護者 or 地域の方."""

    def rng(self) -> random.Random:
        return random.Random(self.seed)


def line_user_id(seed: int, index: int, prefix: str = "U") -> str:
    """A LINE-shaped id (U + 32 hex), derived from the population seed."""
    digest = hashlib.sha256(f"kairan-sim:{seed}:{index}".encode()).hexdigest()
    return prefix + digest[:32]


def bot_user_id(seed: int) -> str:
    return line_user_id(seed, -1)


def _age_weights() -> tuple[list[tuple[int, int]], list[float]]:
    bands = [(lo, hi) for lo, hi, _ in AGE_PYRAMID]
    weights = [m * line_use_share(lo) for lo, _, m in AGE_PYRAMID]
    return bands, weights


def make_resident(seed: int, index: int, municipality: Municipality, today: dt.date) -> Resident:
    rng = random.Random(f"{seed}:{index}")
    bands, weights = _age_weights()
    lo, hi = rng.choices(bands, weights)[0]
    age = rng.randint(lo, hi)
    birth = today.replace(year=today.year - age, month=1, day=1) - dt.timedelta(
        days=rng.randint(0, 364)
    )
    female_share = 0.5 if age < 60 else 0.55 if age < 80 else 0.62
    gender = "female" if rng.random() < female_share else "male"
    names, weights_a = zip(*municipality.areas, strict=True)
    area = rng.choices(names, weights_a)[0]
    interests = tuple(t for t in municipality.topics if rng.random() < topic_probability(t, age))
    if not interests:
        interests = (rng.choice(municipality.topics),)
    given = rng.choice(GIVEN_FEMALE if gender == "female" else GIVEN_MALE)
    has_picture = rng.random() < 0.6
    resident = Resident(
        index=index,
        user_id=line_user_id(seed, index),
        display_name=f"{rng.choice(SURNAMES)}{given}",
        birth_date=birth,
        age=age,
        gender=gender,
        states_gender=rng.random() > 0.07,
        area=area,
        interests=interests,
        consents=rng.random() > 0.04,
        abandon_rate=rng.choice((0.0, 0.0, 0.0, 0.01, 0.03, 0.1)),
        settings_change_rate=0.08,
        block_rate=0.005,
        picture_url=f"https://profile.line-scdn.net/sim/{index}" if has_picture else None,
        status_message="よろしくお願いします" if rng.random() < 0.2 else None,
        seed=rng.getrandbits(63),
    )
    if municipality.school_districts:
        # Drawn after every other trait, so a population without districts is unchanged.
        parent = "子育て" in interests and 25 <= age <= 50
        if rng.random() < (0.7 if parent else 0.04):
            district, junior_high = rng.choice(municipality.school_districts)
            # How the resident describes themselves to the program (a guardian or a
            # neighbour watching over the children); from its own generator, so every other
            # trait of the population stays as it was.
            relation = (
                "保護者" if parent or random.Random(resident.seed).random() < 0.3 else "地域の方"
            )
            resident = replace(
                resident, school_district=district, junior_high=junior_high, relation=relation
            )
    return resident


class Population:
    """`size` residents of `municipality`, reproducible from `seed`."""

    def __init__(
        self,
        size: int,
        seed: int = 0,
        municipality: Municipality | None = None,
        today: dt.date | None = None,
    ) -> None:
        self.seed = seed
        self.municipality = municipality or Municipality()
        self.today = today or dt.date(2026, 4, 1)
        self.residents = [
            make_resident(seed, i, self.municipality, self.today) for i in range(size)
        ]
        self._by_id = {r.user_id: r for r in self.residents}

    def __len__(self) -> int:
        return len(self.residents)

    def __iter__(self) -> Iterator[Resident]:
        return iter(self.residents)

    def __getitem__(self, index: int) -> Resident:
        return self.residents[index]

    def get(self, user_id: str) -> Resident | None:
        return self._by_id.get(user_id)

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._by_id

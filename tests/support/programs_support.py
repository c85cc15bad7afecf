"""A child-safety program set up the way a city would: districts, institutions, staff, an
approved 不審者情報 template, and guardians registered by district."""

from __future__ import annotations

import time
from dataclasses import dataclass

from kairand.programs import catalogue, service
from kairand.programs import templates as tpl
from kairand.store import programs as program_store
from kairand.store import staff as staff_store
from kairand.store import synthetic
from kairand.store.database import Store

KODOMO = catalogue.CHILD_SAFETY_CODE
Q = catalogue.DISTRICT_QUESTION
DISTRICTS = ("asahi", "hikari", "midori", "minato", "sakura", "wakaba", "kita", "yamate")
KINDERGARTEN = ("asahi", "hikari")  # たんぽぽこども園 covers these
SCHOOL = ("minato",)  # 港小学校 covers this


def uid(i: int) -> str:
    return f"U{i:032x}"


@dataclass(frozen=True)
class Population:
    expected: set[str]
    """Registered guardians of KINDERGARTEN's districts (the alert's recipients)."""
    city_registered: int
    followers: int


async def setup_program(store: Store) -> int:
    """Program, districts, institutions, staff and an approved template; the template id."""
    now = int(time.time())
    for name, roles in (
        ("yamada", ("author",)),  # たんぽぽこども園
        ("hayashi", ("author",)),  # its head (園長)
        ("sato", ("author",)),  # 港小学校
        ("kyoiku", ("author",)),  # 教育委員会
        ("tanaka", ("author",)),  # city information author (no institution)
        ("kato", ("approver",)),
        ("suzuki", ("approver",)),
    ):
        store.write_sync(staff_store.upsert, staff_store.StaffRecord(name, name, roles), now)
    await service.put_program(store, "admin", KODOMO, catalogue.child_safety())
    await service.import_districts(store, "admin", catalogue.DEMO_DISTRICTS_CSV)
    await service.put_institution(
        store, "admin", "tanpopo", "たんぽぽこども園", "kodomoen", False, KINDERGARTEN
    )
    await service.put_institution(store, "admin", "minato_es", "港小学校", "school", False, SCHOOL)
    await service.put_institution(store, "admin", "board", "教育委員会", "board", True, ())
    await service.assign_staff(store, "admin", "yamada", "tanpopo")
    await service.assign_staff(store, "admin", "hayashi", "tanpopo", head=True)
    await service.assign_staff(store, "admin", "sato", "minato_es")
    await service.assign_staff(store, "admin", "kyoiku", "board")
    tid = await service.create_template(
        store, "kato", KODOMO, "不審者情報", tpl.suspicious_person()
    )
    await service.approve_template(store, "suzuki", tid)
    return tid


def populate(store: Store, n: int) -> Population:
    """N followers: city residents (some stopped, some unregistered) and, overlapping, guardians
    of the child-safety program in every district (some not finished registering)."""
    now = int(time.time())
    rows, members, expected = [], [], set()
    city = 0
    for i in range(n):
        registered = i % 5 != 4
        stopped = i % 9 == 8  # left the city information, may still be a guardian
        rows.append(synthetic.SyntheticResident(uid(i), registered, stopped, {"area": ["asahi"]}))
        city += int(registered and not stopped)
        if i % 3 == 0:
            continue  # not in the program
        picks = (DISTRICTS[i % len(DISTRICTS)], DISTRICTS[(i // 7) % len(DISTRICTS)])
        codes = sorted(set(picks))
        done = i % 11 != 10  # still answering: receives nothing yet
        members.append((uid(i), codes, done))
        if done and set(codes) & set(KINDERGARTEN):
            expected.add(uid(i))
    store.write_sync(synthetic.insert_residents, rows, now)
    store.write_sync(program_store.insert_synthetic_members, KODOMO, members, Q, 1, now)
    return Population(expected, city, n)


FILLED = {
    "when": "12月1日（月）午後3時30分ごろ",
    "place": "朝日町の公園付近",
    "what": "下校中の児童が、見知らぬ男から声をかけられました。",
    "features": "40歳くらい、黒い上着、白いマスク",
    "advice": "登下校時は複数で行動し、不審な人を見かけたら近くの大人に知らせましょう。",
}

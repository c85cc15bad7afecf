"""The 子ども安全情報 program in the demo and training mode (訓練モード): the program, the
fictional district list, three institutions (a kindergarten whose head and author is the
person running the demo, a school, the board of education) and an approved 不審者情報
template, so a newcomer can send an alert from the 緊急配信 screen (F10) at once.

Synthetic set-up only; the template is written by a fictional trainer (`demo-trainer`) and
approved by the person running the demo, so four eyes hold for it as on a real appliance."""

from __future__ import annotations

import time

from kairand.programs import catalogue, service
from kairand.programs import templates as tpl
from kairand.programs.model import parse_districts_csv
from kairand.store import programs as q
from kairand.store import staff as staff_store
from kairand.store.database import Store

TRAINER = "demo-trainer"


def simulator_districts() -> str:
    """The --school-districts argument of kairan-sim for the demo's districts."""
    return ",".join(
        f"{d.name}:{d.junior_high_name}" for d in parse_districts_csv(catalogue.DEMO_DISTRICTS_CSV)
    )


async def install(store: Store, newcomer: str) -> bool:
    """Set the demo program up once; False when it was already there."""
    if store.read_sync(q.get_program, catalogue.CHILD_SAFETY_CODE) is not None:
        return False
    store.write_sync(
        staff_store.upsert,
        staff_store.StaffRecord(TRAINER, "研修担当（架空）", ("author", "approver"), False),
        int(time.time()),
    )
    actor = "demo"
    await service.put_program(store, actor, catalogue.CHILD_SAFETY_CODE, catalogue.child_safety())
    await service.import_districts(store, actor, catalogue.DEMO_DISTRICTS_CSV)
    await service.put_institution(
        store, actor, "tanpopo", "たんぽぽこども園", "kodomoen", False, ("asahi", "hikari")
    )
    await service.put_institution(
        store, actor, "minato_es", "港小学校", "school", False, ("minato",)
    )
    await service.put_institution(store, actor, "board", "教育委員会", "board", True, ())
    await service.assign_staff(store, actor, newcomer, "tanpopo", head=True)
    tid = await service.create_template(
        store, TRAINER, catalogue.CHILD_SAFETY_CODE, "不審者情報", tpl.suspicious_person()
    )
    await service.approve_template(store, newcomer, tid)
    return True

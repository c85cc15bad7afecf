"""Child-safety alerts end to end: a kindergarten author sends a filled 不審者情報 template to its
districts with no second person; every registered guardian of those districts gets exactly one
copy and nobody else (simulator ledger); another institution cannot address those districts;
the March expiry removes the program's registrations and leaves the city's alone."""

from __future__ import annotations

import datetime as dt

import pytest

from kairand.delivery import service as delivery_service
from kairand.delivery.errors import OutOfScope
from kairand.delivery.model import DeliveryContent, Status
from kairand.delivery.sender import Sender
from kairand.line.client import line_api
from kairand.programs import expiry, service
from kairand.programs.scope import ScopeError
from kairand.programs.service import ProgramError
from kairand.retention.rules import Annual, boundary_in_year, notice_time_for
from kairand.segments.model import SegmentFilter
from kairand.store import audit as audit_store
from kairand.store import programs as program_store
from kairand.store import receipts, settings
from kairand.store.database import Store
from kairand.timeutil import JST
from tests.support.delivery_harness import fast_config, run_sender, simulator
from tests.support.programs_support import (
    FILLED,
    KINDERGARTEN,
    KODOMO,
    Q,
    populate,
    setup_program,
    uid,
)
from tests.support.retention_support import push_stand_in

N = 1500


@pytest.mark.req("K1")
@pytest.mark.req("K8")
@pytest.mark.req("S8")
async def test_kindergarten_alert_reaches_its_guardians_exactly_once(store: Store) -> None:
    tid = await setup_program(store)
    population = populate(store, N)
    assert population.expected  # the population has guardians in the kindergarten's districts
    sent = await service.send_alert(store, "yamada", tid, "tanpopo", KINDERGARTEN, FILLED)
    view = await delivery_service.get(store, sent.delivery_id)
    # No second person: approved by the template's approval, urgent, class 1.
    assert view.status == Status.approved and view.urgent and view.confidentiality == 1
    assert view.approver == f"template:{tid}" and view.author == "yamada"
    assert "hayashi" in sent.notify and "kato" in sent.notify and "suzuki" in sent.notify
    async with simulator(N) as line:
        await run_sender(
            Sender(store, line.api, fast_config()), store=store, delivery_ids=(sent.delivery_id,)
        )
        received = line.sim.received()
        texts = {m.texts for m in line.sim.multicasts}
    assert set(received) == population.expected
    assert set(received.values()) == {1}
    assert texts == {(sent.text,)} and "朝日町の公園付近" in sent.text
    done = await delivery_service.get(store, sent.delivery_id)
    assert done.status == Status.sent and done.sent_count == len(population.expected)
    actions = [
        (e.entry.actor, e.entry.action, e.entry.outcome)
        for e in store.read_sync(lambda c: list(audit_store.iter_entries(c)))
    ]
    assert ("yamada", "alert.send", "ok") in actions


@pytest.mark.req("K8")
async def test_another_institution_cannot_address_those_districts(store: Store) -> None:
    tid = await setup_program(store)
    populate(store, 60)
    # 港小学校's author, with its own institution: the kindergarten's districts are outside it.
    with pytest.raises(ScopeError) as refused:
        await service.send_alert(store, "sato", tid, "minato_es", KINDERGARTEN, FILLED)
    assert refused.value.code == "district_out_of_scope"
    # ... nor can they send in the kindergarten's name.
    with pytest.raises(ProgramError) as not_member:
        await service.send_alert(store, "sato", tid, "tanpopo", KINDERGARTEN, FILLED)
    assert not_member.value.code == "not_member"
    # Nor through an ordinary delivery of the program (enforced in the delivery service).
    segment = SegmentFilter.model_validate(
        {"program": KODOMO, "conditions": [{"question": Q, "any_of": ["asahi"]}]}
    )
    with pytest.raises(OutOfScope):
        await delivery_service.create_draft(
            store, "sato", DeliveryContent(title="t", messages=("m",), segment=segment)
        )
    # A city author without an institution cannot use the program at all.
    with pytest.raises(OutOfScope) as none:
        await delivery_service.create_draft(
            store, "tanaka", DeliveryContent(title="t", messages=("m",), segment=segment)
        )
    assert none.value.reason == "no_institution"
    # The board of education covers every district.
    sent = await service.send_alert(store, "kyoiku", tid, "board", KINDERGARTEN, FILLED)
    assert sent.delivery_id > 0
    denied = [
        e.entry
        for e in store.read_sync(lambda c: list(audit_store.iter_entries(c)))
        if e.entry.action == "alert.send" and e.entry.outcome == "denied"
    ]
    assert [d.actor for d in denied] == ["sato", "sato"]


@pytest.mark.req("K2")
async def test_march_expiry_removes_program_registrations_only(store: Store) -> None:
    await setup_program(store)
    population = populate(store, 300)
    before_members = store.read_sync(program_store.member_counts, KODOMO)
    assert before_members[0] > 0
    boundary = boundary_in_year(Annual(), dt.datetime.now(JST).year + 1)
    # The last run was a day before the boundary; now is a minute after it.
    store.write_sync(settings.put, f"programs.{KODOMO}.expiry_last_run", boundary - 86400)
    receipts_before = len(store.read_sync(receipts.between, 0, 2**62))
    result = await expiry.run_once(store, boundary + 60)
    assert result.expired[KODOMO] == sum(before_members)
    assert store.read_sync(program_store.member_counts, KODOMO) == (0, 0)
    remaining = store.read_sync(
        lambda c: c.execute("SELECT count(*) FROM answers WHERE question = ?", (Q,)).fetchone()[0]
    )
    assert remaining == 0
    # City registrations and answers are untouched.
    assert store.read_sync(program_store.default_counts) == population.city_registered
    city_answers = store.read_sync(
        lambda c: c.execute("SELECT count(*) FROM answers WHERE question = 'area'").fetchone()[0]
    )
    assert city_answers == 300  # every follower answered the city's area question
    made = store.read_sync(receipts.between, 0, 2**62)[receipts_before:]
    assert len(made) == sum(before_members)
    assert {r.reason for r in made} == {"annual_expiry"}
    # Run again: nothing more, nothing twice.
    again = await expiry.run_once(store, boundary + 120)
    assert not again.expired


@pytest.mark.req("K2")
async def test_march_notice_reaches_each_registered_member_once(store: Store) -> None:
    """K2: in March, before the boundary, every registered member of the program gets one
    re-registration push naming the program and the deadline, including members who stopped
    the city information (the program's alerts still reach them, so must its notice); members
    still answering and city residents outside the program get none; later runs in March send
    nothing again."""
    await setup_program(store)
    n = 300
    populate(store, n)
    # populate(): i % 3 == 0 is not in the program, i % 11 == 10 is still answering, and
    # i % 9 == 8 stopped the city information.
    expected = {uid(i) for i in range(n) if i % 3 and i % 11 != 10}
    assert any(i % 3 and i % 11 != 10 and i % 9 == 8 for i in range(n))  # stopped members
    boundary = boundary_in_year(Annual(), dt.datetime.now(JST).year + 1)
    notice_at = notice_time_for(Annual(), boundary)
    async with push_stand_in() as stub, line_api(stub.url, "token") as line:
        before = await expiry.run_once(store, notice_at - 3600, line=line)
        assert not before.notices and not stub.received  # not before the notice date
        first = await expiry.run_once(store, notice_at + 60, line=line)
        assert first.notices["sent"] == len(expected)
        assert not first.expired
        assert sorted(r["to"] for r in stub.received) == sorted(expected)
        (text,) = stub.texts_to(min(expected))
        assert "子ども安全情報の登録更新のお知らせ" in text and "23時59分" in text
        for later in (notice_at + 86400, boundary - 60):
            again = await expiry.run_once(store, later, line=line)
            assert again.notices["sent"] == 0
        assert len(stub.received) == len(expected)
    assert store.read_sync(program_store.member_counts, KODOMO)[0] > 0  # not expired yet

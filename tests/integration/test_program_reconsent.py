"""A raised consent version of a program (its purpose notice changed in substance) stops its
deliveries to members who agreed only to the older notice until they agree again: they are
prompted once in LINE, an alert does not reach them, and after agreeing in the chat (the
inbox's program dialogue) the next alert does — with their districts unchanged."""

from __future__ import annotations

import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kairand.conversation.events import Event
from kairand.delivery.sender import Sender
from kairand.programs import catalogue, consent, dialogue, service
from kairand.programs.inbox import apply_event
from kairand.programs.service import ProgramError
from kairand.store import audit as audit_store
from kairand.store import programs as program_store
from kairand.store.database import Connection, Store
from tests.support.delivery_harness import fast_config, run_sender, simulator
from tests.support.programs_support import (
    FILLED,
    KINDERGARTEN,
    KODOMO,
    Q,
    populate,
    setup_program,
)

N = 240
KEY = Ed25519PrivateKey.generate()


def _chat(conn: Connection, uid: str, events: list[Event]) -> list[dict]:
    """The events through the inbox's program dialogue, as the inbox worker applies them."""
    rid = conn.execute("SELECT id FROM residents WHERE line_user_id = ?", (uid,)).fetchone()[0]
    replies: list[dict] = []
    for ev in events:
        applied = apply_event(conn, ev, uid, rid, int(time.time()), b"k" * 32, KEY)
        assert applied is not None
        replies.extend(applied.replies)
    return replies


def agree_again(store: Store, uid: str, version: int) -> list[dict]:
    opened = Event("text", uid, 1, "r1", text="子ども安全情報")
    yes = Event("postback", uid, 2, "r2", data=dialogue.encode("yes", KODOMO, version))
    return store.write_sync(_chat, uid, [opened, yes])


def districts_of(store: Store, uid: str) -> list[str]:
    return store.read_sync(
        lambda c: [
            r[0]
            for r in c.execute(
                "SELECT a.value FROM answers a JOIN residents r ON r.id = a.resident_id"
                " WHERE r.line_user_id = ? AND a.question = ? ORDER BY a.value",
                (uid, Q),
            )
        ]
    )


@pytest.mark.req("K1")
@pytest.mark.req("S16")
async def test_members_of_an_older_notice_get_nothing_until_they_agree_again(
    store: Store,
) -> None:
    tid = await setup_program(store)
    population = populate(store, N)
    registered_before, _ = store.read_sync(program_store.member_counts, KODOMO)
    guardians = sorted(population.expected)
    assert len(guardians) >= 20
    first, later = set(guardians[: len(guardians) // 2]), set(guardians[len(guardians) // 2 :])
    districts_before = {u: districts_of(store, u) for u in guardians}

    # Staff publish a changed purpose notice (consent version 2): every registered member
    # agreed only to version 1, so all are suspended at once.
    v2 = catalogue.child_safety().model_copy(
        update={
            "consent_version": 2,
            "purpose_notice": catalogue.child_safety().purpose_notice + "（改定）",
        }
    )
    assert await service.put_program(store, "admin", KODOMO, v2) is False
    assert store.read_sync(program_store.member_counts, KODOMO)[0] == 0
    put = [
        e.entry
        for e in store.read_sync(lambda c: list(audit_store.iter_entries(c)))
        if e.entry.action == "program.put"
    ][-1]
    assert put.detail["suspended"] == registered_before and put.detail["consent_version"] == 2
    # The version cannot go back down.
    with pytest.raises(ProgramError) as lowered:
        await service.put_program(store, "admin", KODOMO, catalogue.child_safety())
    assert lowered.value.code == "consent_version_lowered"

    async with simulator(N) as line:
        # Each suspended member is prompted once in LINE, also one who stopped the city
        # information (the program's alerts reached them until now).
        prompted = await consent.send_prompts(store, line.api)
        pushes = line.sim.sim.ledger.recipients(kind="push")
        stopped = {
            u
            for (u,) in store.read_sync(
                lambda c: c.execute(
                    "SELECT line_user_id FROM residents WHERE deliveries_stopped = 1"
                ).fetchall()
            )
        }
        assert prompted["sent"] == registered_before and not prompted["failed"]
        assert set(pushes.values()) == {1} and set(guardians) <= set(pushes)
        assert set(guardians) & stopped, "the population should include a stopped member"
        texts = {t for r in line.sim.sim.ledger.find(kind="push") for t in r.texts}
        assert texts == {consent.prompt_text(v2)}
        again = await consent.send_prompts(store, line.api)
        assert again["sent"] == 0  # once per member and version

        # Half the guardians agree again in the chat; their districts are kept.
        for uid in sorted(first):
            replies = agree_again(store, uid, 2)
            assert "利用目的の内容を改めました" in replies[0]["text"]
            assert "配信を再開します" in replies[-1]["text"]
        assert store.read_sync(program_store.member_counts, KODOMO)[0] >= len(first)

        sent = await service.send_alert(store, "yamada", tid, "tanpopo", KINDERGARTEN, FILLED)
        await run_sender(
            Sender(store, line.api, fast_config()), store=store, delivery_ids=(sent.delivery_id,)
        )
        got = {u for m in line.sim.multicasts if m.texts == (sent.text,) for u in m.to}
        assert got == first  # the others agreed only to the older notice: nothing

        # The rest agree too: the next alert reaches every guardian of those districts once.
        for uid in sorted(later):
            agree_again(store, uid, 2)
        second = await service.send_alert(
            store, "yamada", tid, "tanpopo", KINDERGARTEN, {**FILLED, "when": "12月2日（火）朝"}
        )
        await run_sender(
            Sender(store, line.api, fast_config()),
            store=store,
            delivery_ids=(second.delivery_id,),
        )
        got2 = [u for m in line.sim.multicasts if m.texts == (second.text,) for u in m.to]
        assert sorted(got2) == guardians
    assert {u: districts_of(store, u) for u in guardians} == districts_before

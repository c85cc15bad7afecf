"""Simulated guardians (kairand.simulator, reading labels like a person) register for the
子ども安全情報 program through a real `kairand` process after the city survey: its own
consent, the two-step district choice, and the program's own question (登録の区分), each
answer matching the resident's traits."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from kairand.config import Config
from kairand.conversation.survey import AREAS
from kairand.keys import secrets as keys
from kairand.programs import catalogue, service
from kairand.programs.model import parse_districts_csv
from kairand.simulator import Simulator, SimulatorConfig, WebhookTarget
from kairand.simulator.population import Municipality
from kairand.store import programs as program_store
from kairand.store import residents
from kairand.store.bootstrap import open_store
from kairand.store.database import open_connection
from tests.integration.test_onboarding_simulator import (
    _pending,
    _start_daemon,
    _wait_ready,
    residents_read_check_marks,
)
from tests.support.line_fakes import channel_secret, setup_dev
from tests.support.ports import free_port

POPULATION = 300
DISTRICTS = parse_districts_csv(catalogue.DEMO_DISTRICTS_CSV)
RELATION = {"保護者": "guardian", "地域の方": "neighbour"}


async def _prepare(config: Config) -> None:
    store = await asyncio.to_thread(open_store, config)
    try:
        await service.put_program(
            store, "admin", catalogue.CHILD_SAFETY_CODE, catalogue.child_safety()
        )
        await service.import_districts(store, "admin", catalogue.DEMO_DISTRICTS_CSV)
    finally:
        await asyncio.to_thread(store.close)


def _program_answers(config: Config) -> dict[str, tuple[bool, dict[str, list]]]:
    """LINE user id -> (registered in the program, the program's answers), for members."""
    conn = open_connection(config.database_path, keys.db_key(), readonly=True)
    try:
        out = {}
        rows = conn.execute(
            "SELECT r.id, r.line_user_id FROM program_members m JOIN residents r"
            " ON r.id = m.resident_id WHERE m.program = ?",
            (catalogue.CHILD_SAFETY_CODE,),
        ).fetchall()
        for rid, uid in rows:
            member = program_store.member(conn, catalogue.CHILD_SAFETY_CODE, rid)
            answers = residents.answers_of(conn, uid)
            mine = {q: v for q, v in answers.items() if q.startswith("kodomo_")}
            out[uid] = (member is not None and member.registered_at is not None, mine)
        return out
    finally:
        conn.close()


@pytest.mark.req("K1")
@pytest.mark.allow_blocking  # the daemon is another process; the test reads its store at the end
async def test_simulated_guardians_answer_the_programs_own_question(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    residents_read_check_marks(monkeypatch)
    sim_port = free_port()
    config_path, config = await asyncio.to_thread(setup_dev, short_tmp / "dev", sim_port)
    assert config.keyring.directory is not None and config.webhook.socket is not None
    await _prepare(config)
    secret = channel_secret(config)
    token = (config.keyring.directory / "line-channel-access-token").read_text().strip()
    pairs = tuple((d.name, d.junior_high_name) for d in DISTRICTS)
    sim_config = SimulatorConfig(
        seed=16,
        population=POPULATION,
        municipality=Municipality(
            areas=tuple((label, 1.0) for _, label in AREAS), school_districts=pairs
        ),
        channel_secret=secret,
        access_token=token,
        bot_user_id=config.webhook.bot_user_id,
        port=sim_port,
        webhook=WebhookTarget(
            "http://localhost" + config.webhook.path, unix_socket=str(config.webhook.socket)
        ),
    )
    log_path = short_tmp / "kairand.log"
    log_file = log_path.open("ab")
    proc = _start_daemon(config_path, log_file)
    try:
        async with Simulator(sim_config) as sim:
            await _wait_ready(config, secret, proc)
            sim.follow(POPULATION)
            async with asyncio.timeout(180):
                # Quiet: nothing pending in the daemon, nothing to send in the simulator, and
                # every reply token used (see test_onboarding_simulator).
                while True:
                    await sim.wait_idle()
                    pending = await asyncio.to_thread(_pending, config)
                    if pending == 0 and sim.idle and not sim.platform.reply_tokens:
                        break
                    await asyncio.sleep(0.05)  # poll again (the daemon is another process)
            population = list(sim.population)
            memories = dict(sim.memories)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        log_file.close()
    assert proc.returncode == 0

    members = await asyncio.to_thread(_program_answers, config)
    code_of = {d.name: d.code for d in DISTRICTS}
    expected = {
        r.user_id: r
        for r in population
        if r.school_district and r.consents and not memories[r.user_id].abandoned
    }
    registered = {uid for uid, (done, _) in members.items() if done}
    assert registered == set(expected)
    assert len(registered) >= 10  # enough guardians for the check to mean something
    relations = set()
    for uid, resident in expected.items():
        _, answers = members[uid]
        assert answers[catalogue.DISTRICT_QUESTION] == [(code_of[resident.school_district], None)]
        assert answers[catalogue.RELATION_QUESTION] == [(RELATION[resident.relation], None)]
        relations.add(resident.relation)
    assert relations == set(RELATION)  # both kinds of registrant answered
    # Nobody else is in the program.
    assert all(
        population_member.school_district
        for population_member in population
        if population_member.user_id in members
    )

"""1,000 synthetic residents of the LINE Platform simulator (kairand.simulator) onboard through
a real `kairand` process: signed webhooks over the unix socket, the real conversation, replies
through the simulator's reply API (validated against LINE's spec and limits)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp
import pytest

from kairand.config import Config
from kairand.conversation.survey import AREAS, TOPICS, default_survey
from kairand.conversation.texts import CHECK
from kairand.keys import secrets as keys
from kairand.simulator import Simulator, SimulatorConfig, WebhookTarget, behaviour
from kairand.simulator.population import Municipality
from kairand.store import inbox, metrics, residents
from kairand.store.database import open_connection
from tests.support.line_fakes import channel_secret, envelope, post_signed, setup_dev
from tests.support.ports import free_port

POPULATION = 1000


def _read_all(config: Config) -> tuple[dict[str, dict], dict[str, dict], dict[str, int], dict]:
    conn = open_connection(config.database_path, keys.db_key(), readonly=True)
    try:
        flags: dict[str, dict] = {}
        answers: dict[str, dict] = {}
        for (uid,) in conn.execute("SELECT line_user_id FROM residents"):
            flags[uid] = residents.flags_of(conn, uid) or {}
            answers[uid] = residents.answers_of(conn, uid)
        today = metrics.day_of(time.time())
        counts = {
            m: sum(metrics.series(conn, m, today, today).values())
            for m in ("follow", "registered", "unfollow")
        }
        return flags, answers, counts, inbox.counts(conn)
    finally:
        conn.close()


def residents_read_check_marks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The simulator's residents match options by exact label and remember tapped
    labels; Kairan marks chosen topics 「✓ 子育て」, which they would take for a new option and
    tap again forever. Until the simulator reads check marks itself, show them the plain label
    and count a ticked option as already tapped."""
    original = behaviour.choose

    def choose(
        options: list[behaviour.Option],
        resident: Any,
        memory: behaviour.Memory,
        rng: Any,
    ) -> behaviour.Option | None:
        ticked = tuple(o.label.removeprefix(CHECK) for o in options if o.label.startswith(CHECK))
        plain = [behaviour.Option(o.label.removeprefix(CHECK), o.action) for o in options]
        seen = dataclasses.replace(memory, tapped=(*memory.tapped, *ticked))
        chosen = original(plain, resident, seen, rng)
        if chosen is None:
            return None
        return next(o for o in options if o.action is chosen.action)

    monkeypatch.setattr(behaviour, "choose", choose)


def _pending(config: Config) -> int:
    conn = open_connection(config.database_path, keys.db_key(), readonly=True)
    try:
        return inbox.count_pending(conn)
    finally:
        conn.close()


def _start_daemon(config_path: Path, log_file: BinaryIO) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "kairand", "--config", str(config_path)],
        stdout=log_file,
        stderr=log_file,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


async def _wait_ready(config: Config, secret: str, proc: subprocess.Popen[bytes]) -> None:
    body = envelope(config.webhook.bot_user_id, [])
    assert config.webhook.socket is not None
    for _ in range(400):
        assert proc.poll() is None, "kairand exited at start-up"
        try:
            if await post_signed(config, secret, body) == 200:
                return
        except (aiohttp.ClientError, OSError):
            pass
        await asyncio.sleep(0.05)
    raise TimeoutError("kairand did not start")


@pytest.mark.allow_blocking  # the daemon is another process; the test reads its store at the end
async def test_thousand_simulated_residents_onboard(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """N1, N2, S1, S16, W6, S10: 1,000 simulated residents (census-shaped ages, some refusing
    consent, some keeping their gender private, some abandoning) follow and answer the real
    survey, picking options by their labels. Every resident is stored once; exactly those who
    consented and did not abandon are registered; birth years (never days), genders and areas
    match their traits; topics are among the survey's; the profile API is never called; no
    user id appears in the daemon's log."""
    residents_read_check_marks(monkeypatch)
    sim_port = free_port()
    config_path, config = await asyncio.to_thread(setup_dev, short_tmp / "dev", sim_port)
    assert config.keyring.directory is not None and config.webhook.socket is not None
    secret = channel_secret(config)
    token = (config.keyring.directory / "line-channel-access-token").read_text().strip()
    survey = default_survey()
    birth = survey.question("birth_year")
    assert birth is not None
    sim_config = SimulatorConfig(
        seed=4,
        population=POPULATION,
        municipality=Municipality(areas=tuple((label, 1.0) for _, label in AREAS)),
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
            async with asyncio.timeout(120):
                # Quiet = the daemon has nothing pending, the simulator nothing to send, and
                # every reply token the simulator issued has been used: the daemon answers
                # each event of an active resident, and a reply that arrives registers the
                # resident's reaction (not idle) before it is acknowledged. The last two are
                # read at one instant, after the store read.
                while True:
                    await sim.wait_idle()
                    pending = await asyncio.to_thread(_pending, config)
                    if pending == 0 and sim.idle and not sim.platform.reply_tokens:
                        break
                    await asyncio.sleep(0.05)  # poll again (the daemon is another process)
            population = list(sim.population)
            memories = dict(sim.memories)
            profile_calls = sim.platform.counters.get("profile", 0)
            reply_calls = sim.platform.counters.get("reply", 0)
            endpoints_used = {k for k, v in sim.platform.counters.items() if v}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        log_file.close()
    assert proc.returncode == 0

    flags, answers, counts, inbox_counts = await asyncio.to_thread(_read_all, config)
    assert set(flags) == {r.user_id for r in population}
    assert counts["follow"] == POPULATION and counts["unfollow"] == 0
    assert set(inbox_counts) == {"done"}
    expected_registered = {
        r.user_id for r in population if r.consents and not memories[r.user_id].abandoned
    }
    registered = {uid for uid, f in flags.items() if f["registered"]}
    assert registered == expected_registered
    assert counts["registered"] == len(registered)
    assert 0 < len(registered) < POPULATION  # the population really has both kinds
    codes = {label: code for code, label in AREAS}
    topic_codes = {code for code, _ in TOPICS}
    area_matches = 0
    for resident in population:
        stored = answers[resident.user_id]
        if resident.user_id not in registered:
            if not resident.consents:
                assert stored == {}  # S16: nothing is collected without consent
            continue
        year = min(max(resident.birth_date.year, birth.min_year), birth.max_year)
        assert stored.get("birth_year") == [(str(year), year)]  # S1: the year, never the day
        if resident.states_gender:
            assert stored.get("gender") == [(resident.gender, None)]
        else:  # keeps it private: the simulator taps the first of その他 / 回答しない
            assert stored.get("gender") in (None, [("other", None)])
        area = stored.get("area")
        area_matches += area == [(codes[resident.area], None)]
        assert {v for v, _ in stored.get("topics", [])} <= topic_codes
        assert stored.get("topics")
    assert area_matches > len(registered) // 2  # residents find their area, also on page 2
    assert profile_calls == 0 and reply_calls > POPULATION  # W6: no profile wanted by default
    # S10: onboarding talks to LINE only through the reply API: no audiences, no narrowcast,
    # no pushes; the answers never leave the box.
    assert endpoints_used == {"reply"}
    log_text = log_path.read_text(encoding="utf-8")
    assert "inbox.processed" in log_text
    assert not any(r.user_id in log_text for r in population)

"""Synthetic residents using a conversation end to end: a small survey bot (not Kairan's) on a
unix socket replies through the simulator; residents tap what their traits say."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiohttp import web

from kairand.simulator import ManualClock, Simulator, SimulatorConfig, WebhookTarget
from kairand.simulator.survey_bot import TOPIC_LABELS, SurveyBot

TOKEN, SECRET = "resident-token", "resident-secret"


async def running(
    tmp: Path, size: int = 150, seed: int = 4, **kw: object
) -> AsyncIterator[tuple[Simulator, SurveyBot]]:
    sock = tmp / f"bot-{seed}-{size}.sock"
    base = dict(
        population=size,
        seed=seed,
        access_token=TOKEN,
        channel_secret=SECRET,
        clock=ManualClock(),
        webhook=WebhookTarget("http://bot/webhook", unix_socket=str(sock)),
    )
    config = SimulatorConfig(**{**base, **kw})  # type: ignore[arg-type]
    bot = SurveyBot("", TOKEN, SECRET, config.municipality.area_names)
    runner = web.AppRunner(bot.make_app())
    await runner.setup()
    await web.UnixSite(runner, str(sock)).start()
    try:
        async with Simulator(config) as sim:
            bot.api_url = sim.api_url
            yield sim, bot
    finally:
        await runner.cleanup()


async def settle(sim: Simulator, bot: SurveyBot) -> None:
    async with asyncio.timeout(30):
        while True:
            await sim.wait_idle()
            # Both idle at the same instant (no await between the two reads) means quiet: the
            # bot has a task per unanswered event until LINE acknowledged its reply, and the
            # simulator records the reaction to a reply before acknowledging it.
            if bot.idle and sim.idle:
                return


async def test_residents_answer_the_survey_according_to_their_traits(short_tmp: Path) -> None:
    """N1, N2, S1, S5: residents consent, state gender (or 回答しない), area, every interest,
    and their birth date in the picker; most finish, a few abandon, refusers stop."""
    async for sim, bot in running(short_tmp):
        sim.follow(150)
        await settle(sim, bot)
        assert bot.bad_signatures == 0 and set(bot.reply_status) == {200}
        assert len(bot.completed) > 0.75 * 150
        for uid in bot.completed:
            resident, answers = sim.resident(uid), bot.answers[uid]
            assert sim.config.municipality.area_names[int(answers["area"])] == resident.area
            expected_gender = {"male": "m", "female": "f"}[resident.gender]
            assert answers["gender"] == (expected_gender if resident.states_gender else "x")
            assert answers["birth"] == resident.birth_date.isoformat()
            assert {TOPIC_LABELS[int(t)] for t in answers["topics"]} == set(resident.interests)
        unfinished = set(r.user_id for r in sim.population) - bot.completed
        refusers = {r.user_id for r in sim.population if not r.consents}
        assert refusers <= unfinished
        assert sim.outcomes["abandoned"] == len(unfinished - refusers)
        assert all(not sim.resident(u).consents or sim.memories[u].abandoned for u in unfinished)


async def test_ledger_answers_who_received_a_delivery(short_tmp: Path) -> None:
    """S5: after a multicast to residents interested in 防災, the ledger names exactly those
    residents once each; a blocked resident receives nothing."""
    async for sim, bot in running(short_tmp, size=60, seed=8):
        sim.follow(60)
        await settle(sim, bot)
        wanted = [u for u in bot.completed if "3" in bot.answers[u]["topics"]]
        blocked = wanted[0]
        sim.unfollow(blocked)
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                sim.api_url + "/v2/bot/message/multicast",
                json={
                    "to": wanted,
                    "messages": [{"type": "text", "text": "【防災】避難訓練のお知らせ"}],
                },
                headers={"Authorization": f"Bearer {TOKEN}"},
            ) as response,
        ):
            assert response.status == 200
            request_id = response.headers["x-line-request-id"]
        assert sim.ledger.recipients(request_id=request_id) == dict.fromkeys(wanted[1:], 1)
        assert sim.ledger.recipients(text="避難訓練") == dict.fromkeys(wanted[1:], 1)
        assert sim.ledger.find(user_id=blocked, text="避難訓練") == []


async def test_the_same_seed_replays_the_same_conversations(short_tmp: Path) -> None:
    """S5: a seeded population using the conversation reproduces exactly: same answers, same
    messages received per resident, same outcomes."""
    runs = []
    for _ in range(2):
        async for sim, bot in running(short_tmp, size=80, seed=13):
            sim.follow(80)
            await settle(sim, bot)
            per_user = {
                r.user_id: [x.texts for x in sim.ledger.for_user(r.user_id)] for r in sim.population
            }
            runs.append((bot.answers, per_user, Counter(sim.outcomes)))
    assert runs[0] == runs[1]


async def test_settings_change_via_rich_menu_and_free_text(short_tmp: Path) -> None:
    """N1: a resident taps 「設定を変更」 on the rich menu and answers the survey again; free
    text gets the bot's reply into the ledger."""
    async for sim, bot in running(short_tmp, size=10, seed=5):
        uid = sim.follow(1)[0].user_id
        await settle(sim, bot)
        assert uid in bot.completed
        menu_id = "richmenu-test"
        from kairand.simulator.api import RichMenu

        sim.platform.rich_menus[menu_id] = RichMenu(
            menu_id,
            {
                "areas": [
                    {
                        "bounds": {},
                        "action": {"type": "uri", "label": "市のサイト", "uri": "https://x.jp"},
                    },
                    {
                        "bounds": {},
                        "action": {"type": "postback", "label": "設定を変更", "data": "q=settings"},
                    },
                ]
            },
            image=b"x",
        )
        sim.platform.default_rich_menu = menu_id
        bot.completed.discard(uid)
        assert sim.tap_rich_menu(uid)
        await settle(sim, bot)
        assert uid in bot.completed
        assert len(sim.ledger.find(user_id=uid, text="登録ありがとうございました")) == 2
        sim.send_text(uid, "ごみの日はいつですか")
        await settle(sim, bot)
        last = sim.ledger.last_for(uid)
        assert last is not None and last.texts == ("メニューからお選びください。",)


async def test_paced_arrivals_and_summary(short_tmp: Path) -> None:
    """S5: residents arrive at a set pace (the demo's and trainers' growing audience) and the
    summary counts what happened without naming anyone."""
    async for sim, bot in running(short_tmp, size=30, seed=6):
        loop = asyncio.get_running_loop()
        started = loop.time()
        followed = await sim.arrive(rate_per_s=100.0, count=20)
        took = loop.time() - started
        await settle(sim, bot)
        assert followed == 20 and 0.15 <= took < 10.0  # paced, not instant; generous upper bound
        summary = sim.summary()
        assert summary["friends"] == 20 and summary["residents"] == 30
        assert summary["finished"] >= len(bot.completed) > 0
        assert summary["messages_received"] == len(sim.ledger)
        assert "友だち 20" in sim.status_text()
        assert not any(r.user_id in sim.status_text() for r in sim.population)


async def test_state_file_keeps_friends_blocks_and_the_month_count_across_runs(
    short_tmp: Path,
) -> None:
    """`make demo` started again restarted the simulator, which forgot its
    friends (the same residents followed again: 友だち追加 above 友だち) and the month's count
    (今月 below 本日). With a state file the simulated LINE remembers them as LINE does; another
    town (seed) starts afresh."""
    state = short_tmp / "sim.json"
    config = SimulatorConfig(population=20, seed=5, state_file=str(state), auto_react=False)
    async with Simulator(config) as sim:
        followed = [r.user_id for r in sim.follow(5)]
        sim.unfollow(followed[0])
        sim.platform.usage = sim.platform.current_usage() + 2  # two messages pushed this month
        sim.phone.send("こんにちは")
        events_before = len(sim.outbox)
    assert events_before == 5 + 1 + 2
    async with Simulator(config) as again:
        assert [again.platform.is_follower(u) for u in followed] == [False] + [True] * 4
        assert again.platform.is_follower(again.phone.user_id)
        assert again.platform.current_usage() == 2
        assert again.outbox == []  # nobody follows again
        assert [r.user_id for r in again.follow(1)] == [again.population[5].user_id]
    other = SimulatorConfig(population=20, seed=6, state_file=str(state), auto_react=False)
    async with Simulator(other) as fresh:
        assert fresh.platform.profiles == {} and fresh.platform.current_usage() == 0

"""Can kairan-sim run a 10,000-resident population on this machine without falling behind?

The simulator runs in this process; a minimal survey bot (kairand.simulator.survey_bot: verifies
signatures, replies through the simulator's reply API) runs in a second process on a unix
socket, so the figures are the simulator's, not the daemon's. Residents follow at a steady
rate and answer a 7-question survey with realistic think times.

Anchors: the offered event rate (achieved/offered should be ~1.0) and LINE's 2-second webhook
deadline (a resident's reaction or a webhook should never be late by anything close to it).

    .venv/bin/python bench/simulator_population.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from kairand.simulator import Simulator, SimulatorConfig, WebhookTarget

TOKEN, SECRET = "bench-token", "bench-secret"


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(quick: bool) -> int:
    population = 1_000 if quick else 10_000
    arrival_s = 10.0 if quick else 120.0
    think = (0.5, 2.0) if quick else (1.0, 4.0)
    tmp = Path(tempfile.mkdtemp(prefix="ks-", dir="/tmp"))
    sock = tmp / "bot.sock"
    config = SimulatorConfig(
        population=population,
        seed=1,
        access_token=TOKEN,
        channel_secret=SECRET,
        webhook=WebhookTarget("http://bot/webhook", unix_socket=str(sock)),
        think_time_s=think,
        freeze_gc=True,
        port=0,
    )
    async with Simulator(config) as sim:
        bot = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "kairand.simulator.survey_bot",
            "--socket",
            str(sock),
            "--api-url",
            sim.api_url,
            "--access-token",
            TOKEN,
            "--channel-secret",
            SECRET,
            "--areas",
            *config.municipality.area_names,
            stdout=asyncio.subprocess.PIPE,
        )
        assert bot.stdout is not None
        await bot.stdout.readline()  # "ready"
        started = time.monotonic()
        cpu_started = time.process_time()
        heartbeat_lag: list[float] = []

        async def heartbeat() -> None:
            # The simulator's own event-loop lag: how late a 20 ms timer fires.
            while True:
                due = time.monotonic() + 0.02
                await asyncio.sleep(0.02)
                heartbeat_lag.append((time.monotonic() - due) * 1000)

        beat = asyncio.create_task(heartbeat())
        interval = arrival_s / population
        loop_lag: list[float] = []
        for i in range(population):
            due = started + i * interval
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                loop_lag.append(-delay * 1000)
            sim.follow(1)
        async with asyncio.timeout(600):
            await sim.wait_idle()
        elapsed = time.monotonic() - started
        cpu = time.process_time() - cpu_started
        beat.cancel()
        bot.terminate()
        out, _ = await bot.communicate()
        bot_stats = json.loads(out.decode().strip().splitlines()[-1])
        assert sim.sender is not None
        stats = sim.sender.stats
        reaction_lag = list(sim.reaction_lag_ms)
        webhook_lag = list(stats.lag_ms)
        events = stats.events
        # Falling behind shows as lag: residents reacting later than their think time, events
        # waiting in the sender's queue, arrivals scheduled later than planned.
        lag_p99 = pct(reaction_lag, 0.99)
        print(f"residents {population} over {arrival_s:.0f}s, think {think[0]}-{think[1]}s")
        print(
            f"webhook events {events} in {elapsed:.1f}s ({events / elapsed:.0f}/s), "
            f"bot completed {bot_stats['completed']}, replies {bot_stats['reply_status']}"
        )
        print(
            f"reaction lag p50 {pct(reaction_lag, 0.5):.1f} ms p99 {lag_p99:.1f} ms; "
            f"webhook queue lag p99 {pct(webhook_lag, 0.99):.1f} ms; "
            f"arrival lag max {max(loop_lag, default=0):.1f} ms"
        )
        loop_p99 = pct(heartbeat_lag, 0.99)
        bot_cpu = bot_stats["cpu_s"] / elapsed
        print(
            f"p99 reaction lag / LINE's 2 s webhook deadline = {lag_p99 / 2000:.3f}; "
            f"simulator loop lag p99 {loop_p99:.1f} ms max {max(heartbeat_lag, default=0):.1f} ms"
        )
        print(
            f"CPU: simulator {cpu / elapsed:.0%}, survey bot {bot_cpu:.0%} of one core; "
            f"bot backed off on 429 {bot_stats['rate_limited']} times; "
            f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
        )
        ok = bot_stats["bad_signatures"] == 0 and set(bot_stats["reply_status"]) == {"200"}
        print(
            f"BENCH simulator_population residents={population} events={events} "
            f"events_per_s={events / elapsed:.0f} duration_s={elapsed:.1f} "
            f"reaction_lag_p99_ms={lag_p99:.1f} lag_over_deadline={lag_p99 / 2000:.3f} "
            f"webhook_lag_p99_ms={pct(webhook_lag, 0.99):.1f} "
            f"arrival_lag_max_ms={max(loop_lag, default=0):.1f} loop_lag_p99_ms={loop_p99:.1f} "
            f"cpu_share={cpu / elapsed:.2f} bot_cpu_share={bot_cpu:.2f} "
            f"load={os.getloadavg()[0]:.2f} "
            f"completed={bot_stats['completed']} ok={int(ok)}"
        )
    shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="1,000 residents (under a minute)")
    sys.exit(asyncio.run(main(parser.parse_args().quick)))

"""The 9:00 rush: N simulated residents try to book the same window appointments the
moment the booking window opens, through the real webhook path — the LINE Platform simulator
signs webhooks into a real `kairand` process (unix socket, SQLCipher store, inbox worker), the
daemon replies through the simulator's reply API — for a fixed number of places.

    .venv/bin/python bench/reservations.py [--quick] [--residents N] [--places N]

Residents read the labels (dates, times with remaining places), type a kana name and a phone
number, confirm, and take another time when told 満席. Two paces: `human` (the headline) takes
1–4 s to read a reply and tap (the simulator's default think time) and 3–8 s more to type a
name or a phone number (`kairand.simulator.booking.TYPING_TIME_S` says why); `stress` answers
every step, typed ones included, within 0.3–1.5 s — faster than anyone types, kept as the
overload figure (`p95_ms_stress`). The full run measures both; `--quick` only the stress pace (a
human-paced rush lasts over a minute: a resident who keeps meeting 満席 takes ~20 steps).
Checked at the end against the store: booked == places, overbooked slots == 0, lost == 0
(every booking number a resident was told is in the store, and nothing else is).
Round trip = a resident's event sent → the reply received (every step of the booking dialogue,
and the confirmation step alone). Anchor: 300 ms p95.
The `breakdown` line splits each step (see `_Timeline`): the simulator's webhook queue, the
daemon's share (webhook POST sent → its reply reaches the simulator; `daemon_p95_ms`), the
reply's schema validation, and the simulator's own dispatch to the resident. The simulator and
the daemon share this machine's cores, so under load the simulator's shares grow too.
The last line is machine-readable:
    BENCH reservations residents=… places=… booked=… overbooked=0 lost=0 p50_ms=… p95_ms=… …
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

from kairand.simulator import booking

ANCHOR_P95_MS = 300.0
CAPACITY = 5


def _free_port() -> int:
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(20000, 30000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


def _catalogue(now: float, places: int) -> Any:
    """One service with exactly PLACES places: CAPACITY per 30-minute slot, 10 slots a day
    from 09:00, on consecutive dates from the day after tomorrow (the window is open)."""
    from kairand.reservations import calendar
    from kairand.reservations.model import Catalogue, DayOverride, Period, example_service

    per_day = CAPACITY * 10
    days, rest = divmod(places, per_day)
    first = calendar.today(now) + dt.timedelta(days=2)
    overrides = []
    for i in range(days + (1 if rest else 0)):
        slots = 10 if i < days else -(-rest // CAPACITY)
        end = 9 * 60 + 30 * slots
        overrides.append(
            DayOverride(
                date=first + dt.timedelta(days=i),
                periods=(Period(start="09:00", end=f"{end // 60:02d}:{end % 60:02d}"),),
            )
        )
    if rest % CAPACITY:
        raise SystemExit(f"--places must be a multiple of {CAPACITY}")
    service = example_service().model_copy(
        update={
            "capacity": CAPACITY,
            "weekly": {},
            "overrides": tuple(overrides),
            "open_on_holidays": True,
            "closes_hours_before": 1,
            "opens_days_ahead": 60,
        }
    )
    return Catalogue(services=(service,))


def _setup(folder: Path, places: int) -> tuple[Path, Any, str, str, int]:
    from kairand.config import load_config
    from kairand.devsetup import init_dev
    from kairand.reservations import service
    from kairand.store.bootstrap import open_store, select_keyring

    sim_port = _free_port()
    config_path = init_dev(folder / "dev", webhook_port=_free_port(), simulator_port=sim_port)
    config = load_config(config_path)
    select_keyring(config)
    with open_store(config) as store:
        store.write_sync(
            service.save_catalogue, _catalogue(time.time(), places), "bench", int(time.time())
        )
    assert config.keyring.directory is not None
    secret = (config.keyring.directory / "line-channel-secret").read_text().strip()
    token = (config.keyring.directory / "line-channel-access-token").read_text().strip()
    return config_path, config, secret, token, sim_port


async def _wait_ready(config: Any, secret: str, proc: subprocess.Popen[bytes]) -> None:
    from kairand.simulator.webhook import sign

    body = b'{"destination":"' + config.webhook.bot_user_id.encode() + b'","events":[]}'
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("kairand exited at start-up")
        with contextlib.suppress(aiohttp.ClientError, OSError):
            connector = aiohttp.UnixConnector(path=str(config.webhook.socket))
            async with (
                aiohttp.ClientSession(connector=connector) as session,
                session.post(
                    "http://localhost" + config.webhook.path,
                    data=body,
                    headers={"x-line-signature": sign(secret, body)},
                ) as response,
            ):
                if response.status == 200:
                    return
        await asyncio.sleep(0.1)
    raise SystemExit("kairand did not start")


def _check(config: Any, told: dict[str, str]) -> dict[str, int]:
    from kairand.keys import secrets as keys
    from kairand.store import reservations as rstore
    from kairand.store.database import open_connection

    conn = open_connection(config.database_path, keys.db_key(), readonly=True)
    try:
        rows = rstore.in_range(conn, 0, 2**40)
    finally:
        conn.close()
    active = [b for b in rows if b.state == "active"]
    per_slot: dict[str, int] = {}
    for b in active:
        per_slot[b.slot] = per_slot.get(b.slot, 0) + 1
    stored = {b.number for b in active}
    told_numbers = set(told.values())
    return {
        "booked": len(active),
        "overbooked": sum(max(0, n - CAPACITY) for n in per_slot.values()),
        "lost": len(told_numbers ^ stored),
    }


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of process PID so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Timeline:
    """Where each booking step's round trip goes, per resident step (the bench's own
    instrumentation: wrappers around the simulator's instance methods, nothing in the daemon).

    t0 the resident's event is created (its reply token issued) → t1 the simulator's webhook
    sender starts the POST carrying it → t2 the daemon answered that POST (inbox commit) →
    t3 the daemon's reply request reached the simulator's API (body read) → t4 the reply body
    passed LINE's schema validation → t5 the resident reads the reply (the round trip's end).
    """

    STAGES = (
        ("sim_queue", 0, 1),
        ("webhook_ack", 1, 2),
        ("daemon", 1, 3),
        ("validate", 3, 4),
        ("sim_dispatch", 4, 5),
    )

    def __init__(self, sim: Any) -> None:
        from kairand.simulator.spec import messaging_spec

        self.open: dict[str, list[float]] = {}  # user id -> [t0..t4] of the step in flight
        self.of_token: dict[str, str] = {}
        self.steps: list[list[float]] = []
        platform, sender = sim.platform, sim.sender
        spec = messaging_spec()
        new_token, post_body, validate, react = (
            platform.new_reply_token,
            sender.post_body,
            spec.validate,
            sim._react,
        )

        def new_reply_token(user_id: str) -> str:
            token: str = new_token(user_id)
            self.of_token[token] = user_id
            self.open[user_id] = [time.monotonic()]
            return token

        async def timed_post(events: list[dict[str, Any]]) -> int:
            started = time.monotonic()
            status: int = await post_body(events)
            for event in events:
                step = self.open.get(self.of_token.get(event.get("replyToken", ""), ""))
                if step is not None and len(step) == 1:
                    step += [started, time.monotonic()]
            return status

        def timed_validate(schema: str, body: Any, volatile: tuple[str, ...] = ()) -> Any:
            started = time.monotonic()
            details = validate(schema, body, volatile)
            token = body.get("replyToken", "") if isinstance(body, dict) else ""
            step = self.open.get(self.of_token.get(token, ""))
            if step is not None and len(step) == 3:
                step += [started, time.monotonic()]
            return details

        async def timed_react(receipt: Any, messages: list[dict[str, Any]]) -> None:
            step = self.open.pop(receipt.user_id, None)
            if step is not None and len(step) == 5:
                self.steps.append([*step, time.monotonic()])
            await react(receipt, messages)

        platform.new_reply_token = new_reply_token
        sender.post_body = timed_post
        spec.validate = timed_validate
        sim._react = timed_react
        self._spec = spec

    def close(self) -> None:
        """Unwrap the shared spec (the platform, sender and simulator end with the run)."""
        del self._spec.validate

    def summary(self) -> str:
        """p50/p95 of each stage, and their means over the slowest 5 % of steps."""
        if not self.steps:
            return "breakdown: no step traced"
        total = sorted(self.steps, key=lambda s: s[5] - s[0])
        tail = total[int(0.95 * len(total)) :]
        parts = []
        for name, a, b in (*self.STAGES, ("total", 0, 5)):
            values = [1000 * (s[b] - s[a]) for s in self.steps]
            tail_mean = statistics.fmean(1000 * (s[b] - s[a]) for s in tail)
            parts.append(
                f"{name} p50={_pct(values, 0.5):.0f} p95={_pct(values, 0.95):.0f} "
                f"slowest5%_mean={tail_mean:.0f}"
            )
        return f"breakdown ({len(self.steps)} steps, ms): " + "; ".join(parts)

    def daemon_ms(self) -> list[float]:
        """Webhook POST sent → the daemon's reply reaches LINE: the daemon's own share."""
        return [1000 * (s[3] - s[1]) for s in self.steps]


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


PACES: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    # pace -> (think time before any reaction, further typing time for a name or a phone)
    "human": (booking.TAP_TIME_S, booking.TYPING_TIME_S),
    "stress": ((0.3, 1.5), (0.0, 0.0)),
}


async def run(residents: int, places: int, spread_s: float, pace: str) -> dict[str, Any]:
    from kairand.simulator import Simulator, SimulatorConfig, WebhookTarget

    with tempfile.TemporaryDirectory(prefix="kb-", dir="/tmp") as tmp:
        config_path, config, secret, token, sim_port = await asyncio.to_thread(
            _setup, Path(tmp), places
        )
        sim_config = SimulatorConfig(
            seed=9,
            population=residents,
            channel_secret=secret,
            access_token=token,
            bot_user_id=config.webhook.bot_user_id,
            port=sim_port,
            think_time_s=PACES[pace][0],
            typing_time_s=PACES[pace][1],
            freeze_gc=True,
            webhook=WebhookTarget(
                "http://localhost" + config.webhook.path,
                unix_socket=str(config.webhook.socket),
            ),
        )
        log = (Path(tmp) / "kairand.log").open("ab")
        # KAIRAN_BENCH_PROFILE=FILE: run the daemon under cProfile (stats written at exit).
        profile = os.environ.get("KAIRAN_BENCH_PROFILE")
        profiler = ["-m", "cProfile", "-o", profile] if profile else []
        proc = await asyncio.to_thread(
            subprocess.Popen,
            [sys.executable, *profiler, "-m", "kairand", "--config", str(config_path)],
            stdout=log,
            stderr=log,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            async with Simulator(sim_config) as sim:
                await _wait_ready(config, secret, proc)
                timeline = _Timeline(sim)
                cpu_at_start = _cpu_seconds(proc.pid)  # start-up (imports, keys) excluded
                people = list(sim.population.residents)
                sim.befriend(people)
                last_print = progressed = time.monotonic()
                previous = 0
                # 9:00: the window opens; everyone sends 予約 within SPREAD_S seconds.
                started = time.monotonic()
                rng = random.Random(3)
                order = sorted(people, key=lambda _: rng.random())
                for i, resident in enumerate(order):
                    sim.start_booking(resident.user_id, intent="keep")
                    due = started + spread_s * (i + 1) / len(order)
                    await asyncio.sleep(max(0.0, due - time.monotonic()))
                while any(m.state not in ("done", "gave_up") for _, m in sim.bookers.values()):
                    if time.monotonic() - last_print > 5:
                        last_print = time.monotonic()
                        states = Counter(m.state for _, m in sim.bookers.values())
                        steps = len(sim.booking_latency_ms)
                        print(f"  {last_print - started:.0f} s: {dict(states)} steps={steps}")
                        if steps != previous:
                            previous, progressed = steps, last_print
                        elif last_print - progressed > 60:
                            # Nobody got an answer for a minute: report who is stuck, stop.
                            for uid, (_p, m) in sim.bookers.items():
                                if m.state not in ("done", "gave_up"):
                                    got = [t for r in sim.ledger.for_user(uid) for t in r.texts]
                                    print("STUCK", m, [g[:60] for g in got[-2:]], flush=True)
                            break
                    if time.monotonic() - started > 1200:
                        raise SystemExit("the rush did not finish within 20 minutes")
                    await asyncio.sleep(0.2)
                seconds = time.monotonic() - started
                told = sim.booked()
                latencies = list(sim.booking_latency_ms)
                outcomes = dict(sim.booking_outcomes)
                events = sim.summary()["webhook_events"]
                rush_cpu = _cpu_seconds(proc.pid) - cpu_at_start
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
            log.close()
        checked = await asyncio.to_thread(_check, config, told)
        if os.environ.get("KAIRAN_BENCH_KEEP_LOG"):
            shutil.copy(Path(tmp) / "kairand.log", os.environ["KAIRAN_BENCH_KEEP_LOG"])
    timeline.close()
    p50, p95 = _pct(latencies, 0.50), _pct(latencies, 0.95)
    print(f"[{pace} pace] cpu during the rush: kairand {rush_cpu:.1f} s")
    print(timeline.summary())
    daemon_p95 = _pct(timeline.daemon_ms(), 0.95)
    print(
        f"[{pace} pace] rush: {residents} residents in {seconds:.1f} s, {events} webhook events, "
        f"steps={len(latencies)} full_seen={outcomes.get('full', 0)} "
        f"gave_up={outcomes.get('gave_up', 0)} mean_ms={statistics.fmean(latencies):.0f} "
        f"p50_ms={p50:.0f} p95_ms={p95:.0f} daemon_p95_ms={daemon_p95:.0f} "
        f"booked={checked['booked']} overbooked={checked['overbooked']} lost={checked['lost']}"
    )
    return {
        **checked,
        "p50": p50,
        "p95": p95,
        "daemon_p95": daemon_p95,
        "full": outcomes.get("full", 0),
        "events": events,
        "seconds": seconds,
        "cpu_ms_per_event": 1000 * rush_cpu / max(1, events),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="500 residents (under a minute)")
    parser.add_argument("--residents", type=int, default=None)
    parser.add_argument("--places", type=int, default=300)
    parser.add_argument("--spread", type=float, default=None, help="seconds over which they arrive")
    parser.add_argument(
        "--pace", choices=sorted(PACES), default=None, help="only this pace (default: both)"
    )
    args = parser.parse_args()
    residents = args.residents or (500 if args.quick else 2000)
    spread = args.spread if args.spread is not None else (5.0 if args.quick else 10.0)
    paces = [args.pace] if args.pace else (["stress"] if args.quick else ["human", "stress"])
    results = {pace: asyncio.run(run(residents, args.places, spread, pace)) for pace in paces}
    head = results[paces[0]]
    extra = "".join(
        f" p95_ms_{pace}={r['p95']:.0f} daemon_p95_ms_{pace}={r['daemon_p95']:.0f}"
        f" cpu_ms_per_event_{pace}={r['cpu_ms_per_event']:.2f}"
        for pace, r in results.items()
        if r is not head
    )
    print(
        f"BENCH reservations pace={paces[0]} residents={residents} places={args.places}"
        f" booked={head['booked']} overbooked={head['overbooked']} lost={head['lost']}"
        f" p50_ms={head['p50']:.0f} p95_ms={head['p95']:.0f}"
        f" p95_vs_300ms={head['p95'] / ANCHOR_P95_MS:.2f} daemon_p95_ms={head['daemon_p95']:.0f}"
        f" full_retries={head['full']} events={head['events']} seconds={head['seconds']:.1f}"
        f" daemon_cpu_ms_per_event={head['cpu_ms_per_event']:.2f}{extra}"
        f" loadavg={os.getloadavg()[0]:.1f}"
    )
    ok = all(
        r["booked"] == args.places and r["overbooked"] == 0 and r["lost"] == 0
        for r in results.values()
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""A day of the same-day queue, compressed: how long does a ticket take to issue, and how long
from the desk's 呼出 until the resident's LINE push reaches LINE (the simulator)?

Parts are real: the staff API on a unix socket (kiosk and counter callers), the SQLCipher store,
the queue's push worker (kairand.queue.pushes, woken by the call), the LINE simulator over
HTTP. Residents with LINE take their ticket in the chat (the inbox transaction's queue shell,
`process_batch`, as the inbox worker runs it); walk-ins at the kiosk through the API. Counters
call, serve, finish or mark no-shows (after the recalls) as the day goes.

Headline: issue p95 (kiosk, over the API) and LINE ticket p95 (inbox transaction), call-to-push
p95 against the 1 s target, and the day's numbering checked (no repeat, no skip).

    .venv/bin/python bench/same_day_queue.py [--quick]
"""

# Not named queue.py: run as a script, this folder leads sys.path, and the name would shadow the
# standard library's `queue` for every other benchmark too.
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import secrets
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from aiohttp import web

from kairand.api.app import serve
from kairand.api.client import connect
from kairand.api.identity import Peer
from kairand.config import QueueSection, QueueServiceSection, load_config
from kairand.devsetup import init_dev
from kairand.keys import secrets as keys
from kairand.line import inbox as inbox_worker
from kairand.line.client import line_api
from kairand.queue import pushes
from kairand.queue.signals import SIGNALS, QueueSignals
from kairand.runtime import CONFIG, LINE, STOPPING, STORE, TASKS, TaskGroup
from kairand.simulator.simulator import Simulator, SimulatorConfig
from kairand.store import inbox, staff
from kairand.store import queue as qstore
from kairand.store.bootstrap import open_store, select_keyring
from kairand.timeutil import JST

QUEUE = QueueSection(
    services=(
        QueueServiceSection(code="hoiku", prefix="A", name="保育所等利用申込", counters=(1, 2, 3)),
        QueueServiceSection(code="juminhyo", prefix="B", name="住民票", counters=(4, 5)),
    ),
    notify_when_ahead=3,
    line_basic_id="@kairan",
    opens_at="08:30",
    closes_at="17:15",
)
DAY_START = dt.datetime(2026, 10, 1, 8, 30, tzinfo=JST).timestamp()
DAY_SECONDS = 8 * 3600


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def header_resolver(request: web.Request) -> Peer:
    name = request.headers.get("X-Test-User")
    return Peer(1000 if name else None, name or None)


async def main(quick: bool) -> None:
    total = 300 if quick else 1500
    line_share = 0.4
    rng = random.Random(15)
    tmp = Path(tempfile.mkdtemp(prefix="kq-", dir="/tmp"))
    try:
        base = load_config(init_dev(tmp / "dev"))
        config = base.model_copy(update={"queue": QUEUE})
        select_keyring(config)
        store = open_store(config)
        store.write_sync(
            lambda c: [
                staff.upsert(c, staff.StaffRecord(n, n, r), 0)
                for n, r in (("hakken", ("kiosk",)), ("madoguchi", ("counter",)))
            ]
        )
        store.bind_loop()
        purge_keys = inbox_worker.PurgeKeys(keys.receipt_hmac_key(), keys.signing_key())
        token = keys.get_secret(keys.CHANNEL_ACCESS_TOKEN)
        # The day runs compressed: each ticket advances the queue's clock evenly over 8 hours.
        clock = {"now": DAY_START + 60}
        signals = QueueSignals(clock=lambda: clock["now"])
        sim = Simulator(
            SimulatorConfig(seed=15, population=0, auto_react=False, access_token=token)
        )
        async with sim, line_api(sim.api_url, token, 5.0) as line:
            users = ["U" + secrets.token_hex(16) for _ in range(int(total * line_share) + 5)]
            for user in users:
                sim.platform.add_follower({"userId": user, "displayName": "住民"})
            app = web.Application()
            app[CONFIG], app[STORE], app[LINE] = config, store, line
            app[STOPPING], app[TASKS], app[SIGNALS] = asyncio.Event(), TaskGroup(), signals
            worker = asyncio.create_task(pushes._loop(app))
            async with (
                serve(config, store, None, header_resolver, signals),
                connect(config.api.socket) as client,
            ):
                kiosk = client.as_user("hakken")
                desk = client.as_user("madoguchi")
                issue_ms: list[float] = []
                line_ms: list[float] = []
                push_ms: list[float] = []
                user_of_label: dict[str, str] = {}
                next_user = iter(users)
                calls = no_shows = 0
                at_counter: dict[int, int] = {}
                for i in range(total):
                    clock["now"] = DAY_START + 60 + DAY_SECONDS * i / total
                    code = "hoiku" if rng.random() < 0.6 else "juminhyo"
                    if rng.random() < line_share:
                        user = next(next_user)
                        start = time.perf_counter()
                        label = await line_ticket(store, purge_keys, user, code, clock["now"])
                        line_ms.append((time.perf_counter() - start) * 1000)
                        user_of_label[label] = user
                    else:
                        start = time.perf_counter()
                        r = await kiosk.post("/v1/queue/tickets", {"service": code})
                        issue_ms.append((time.perf_counter() - start) * 1000)
                        assert r.status == 201, r.body
                    # Counters keep pace: about one call per ticket, a little behind.
                    if i > 5 and rng.random() < 0.97:
                        svc = QUEUE.services[0] if rng.random() < 0.6 else QUEUE.services[1]
                        counter = rng.choice(svc.counters)
                        previous = at_counter.pop(counter, None)
                        if previous is not None:
                            no_show = rng.random() < 0.05
                            no_shows += no_show
                            await finish(desk, previous, no_show)
                        start = time.perf_counter()
                        r = await desk.post(
                            "/v1/queue/call", {"service": svc.code, "counter": counter}
                        )
                        if r.status != 200:
                            continue
                        calls += 1
                        at_counter[counter] = r.body["id"]
                        called = r.body["label"]
                        if called in user_of_label:
                            push_ms.append(
                                await until_pushed(sim, user_of_label[called], called, start)
                            )
                day = dt.datetime.fromtimestamp(DAY_START, JST).date().isoformat()
                numbering_ok = await store.read(check_numbering, day)
                states = await store.read(qstore.push_states)
            app[STOPPING].set()
            signals.push.set()
            await asyncio.wait_for(worker, 10)
        store.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    p95_push = pct(push_ms, 0.95)
    print(
        f"queue day: {total} tickets ({len(line_ms)} via LINE, {len(issue_ms)} at the kiosk),"
        f" {calls} calls, {no_shows} no-shows, pushes {dict(states)}"
    )
    print(
        f"kiosk issue over the API: p50 {pct(issue_ms, 0.5):.1f} ms, p95 {pct(issue_ms, 0.95):.1f}"
        f" ms; LINE ticket (inbox transaction): p50 {pct(line_ms, 0.5):.1f} ms,"
        f" p95 {pct(line_ms, 0.95):.1f} ms"
    )
    print(
        f"call-to-push (desk POST → simulator received): p50 {pct(push_ms, 0.5):.1f} ms,"
        f" p95 {p95_push:.1f} ms over {len(push_ms)} calls of LINE tickets (target < 1000 ms)"
    )
    print(
        f"BENCH queue tickets={total} issue_p95_ms={pct(issue_ms, 0.95):.1f}"
        f" line_issue_p95_ms={pct(line_ms, 0.95):.1f} call_to_push_p50_ms={pct(push_ms, 0.5):.1f}"
        f" call_to_push_p95_ms={p95_push:.1f} target_ms=1000"
        f" ratio_vs_target={p95_push / 1000:.3f} calls={calls} no_shows={no_shows}"
        f" numbering_ok={int(numbering_ok)}"
    )


async def line_ticket(store, purge_keys, user: str, code: str, now: float) -> str:
    """The resident taps the service in 番号札を取る: one webhook event through the inbox's
    transaction (as the inbox worker runs it); the ticket label from the reply."""
    body = {
        "type": "postback",
        "mode": "active",
        "timestamp": int(now * 1000),
        "source": {"type": "user", "userId": user},
        "webhookEventId": secrets.token_hex(13),
        "deliveryContext": {"isRedelivery": False},
        "replyToken": secrets.token_hex(16),
        "postback": {"data": f"que=take&s={code}"},
    }
    row = inbox.IncomingEvent(
        body["webhookEventId"], user, "postback", body["timestamp"], json.dumps(body)
    )

    def apply(conn):
        inbox.insert_events(conn, [row], now)
        return inbox_worker.process_batch(conn, 10, now, purge_keys, False, queue_cfg=QUEUE)

    result = await store.write(apply)
    text = result.replies[0].messages[0]["text"]
    return text.split("番号札 ")[1].split("（")[0]


async def finish(desk, ticket_id: int, no_show: bool) -> None:
    if no_show:
        for _ in range(QUEUE.recall_limit):
            await desk.post(f"/v1/queue/tickets/{ticket_id}/action", {"action": "recall"})
        await desk.post(f"/v1/queue/tickets/{ticket_id}/action", {"action": "absent"})
        return
    await desk.post(f"/v1/queue/tickets/{ticket_id}/action", {"action": "serve"})
    await desk.post(f"/v1/queue/tickets/{ticket_id}/action", {"action": "done"})


async def until_pushed(sim: Simulator, user: str, label: str, start: float) -> float:
    """Milliseconds from START until the simulator has received the call push for LABEL."""
    deadline = time.perf_counter() + 10
    while time.perf_counter() < deadline:
        if any(
            f"{label}番の方、" in t and "窓口へ" in t
            for r in sim.ledger.for_user(user)
            for t in r.texts
        ):
            return (time.perf_counter() - start) * 1000
        await asyncio.sleep(0.002)
    raise AssertionError(f"the call push for {label} did not arrive within 10 s")


def check_numbering(conn, day: str) -> bool:
    numbers: dict[str, list[int]] = defaultdict(list)
    for t in qstore.of_day(conn, day):
        numbers[t.service].append(t.number)
    return all(sorted(v) == list(range(1, len(v) + 1)) for v in numbers.values())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 tickets (< 1 min)")
    asyncio.run(main(parser.parse_args().quick))

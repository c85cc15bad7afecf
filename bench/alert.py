"""Urgent child-safety alert: from the author's send to the last batch LINE accepts.

    .venv/bin/python bench/alert.py            # 100,000 registered guardians
    .venv/bin/python bench/alert.py --quick    # 10,000

A 子ども安全情報 program with 11 school districts and N registered guardians (plus as many city
residents who are not in the program); the board of education sends a filled 不審者情報
template to every district. The LINE simulator runs in its own process with LINE's multicast
rate limit (200 requests/s) and 50–150 ms latency; it stamps every accepted multicast with the
system's monotonic clock, which this process shares. The sender is the daemon's Sender at its
default configuration (200 requests/s, 40 in flight).

Anchor: the rate bound, ceil(N / 500) requests ÷ 200 requests/s (100k → 200 requests → 1.0 s).
Headline: elapsed from the send call to the last accepted multicast, and elapsed ÷ bound
(target ≤ 1.10: nothing of ours in the way).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kairand.config import DeliverySection, load_config
from kairand.delivery import service as delivery_service
from kairand.delivery.model import TERMINAL
from kairand.delivery.sender import Sender
from kairand.devsetup import init_dev
from kairand.keys import secrets
from kairand.line.client import line_api
from kairand.programs import catalogue, service
from kairand.programs import templates as tpl
from kairand.store import staff as staff_store
from kairand.store.bootstrap import open_store, select_keyring
from kairand.store.database import Connection, Store

SIM_SCRIPT = r"""
import asyncio, json, signal, sys, time
from kairand.simulator import FaultProfile, Simulator, SimulatorConfig
from kairand.simulator import api as sim_api

async def main(port, token, n):
    stamps = []
    original = sim_api.Platform.deliver
    def deliver(self, user_ids, kind, *args, **kwargs):
        if kind == "multicast":
            stamps.append((time.monotonic(), len(user_ids)))
        return original(self, user_ids, kind, *args, **kwargs)
    sim_api.Platform.deliver = deliver
    config = SimulatorConfig(
        population=0, access_token=token, port=port, auto_react=False,
        faults=FaultProfile(latency_min_ms=50, latency_max_ms=150, seed=1),
    )
    sim = Simulator(config)
    await sim.start()
    for i in range(1, n + 1):
        sim.platform.add_follower({"userId": "U%032x" % i, "displayName": "保護者"})
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    await sim.stop()
    print(json.dumps({"stamps": stamps}), flush=True)

asyncio.run(main(int(sys.argv[1]), sys.argv[2], int(sys.argv[3])))
"""

FILLED = {
    "when": "12月1日（月）午後3時30分ごろ",
    "place": "朝日町の公園付近",
    "what": "下校中の児童が、見知らぬ男から声をかけられました。",
    "advice": "登下校時は複数で行動しましょう。",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def populate(conn: Connection, n: int) -> None:
    """N guardians registered in the program (each in one district, ids 1..N) and N city
    residents who are not (ids N+1..2N)."""
    codes = [d.code for d in service.districts_of(conn)]
    conn.execute("BEGIN")
    conn.execute(
        f"WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {2 * n})"
        " INSERT INTO residents (id, line_user_id, followed_at, registered_at,"
        " last_interaction_at) SELECT i, printf('U%032x', i), 1, 1,"
        " CAST(strftime('%s') AS INTEGER) FROM s"
    )
    conn.execute(
        "INSERT INTO program_members (program, resident_id, consent_version, consented_at,"
        f" registered_at) SELECT ?, id, 1, 1, 1 FROM residents WHERE id <= {n}",
        (catalogue.CHILD_SAFETY_CODE,),
    )
    marks = ",".join(f"('{c}', {i})" for i, c in enumerate(codes))
    conn.execute(
        f"WITH d(code, k) AS (VALUES {marks}) INSERT INTO answers (resident_id, question,"
        " value, number, answered_at) SELECT r.id, ?, d.code, NULL, 1 FROM residents r"
        f" JOIN d ON d.k = r.id % {len(codes)} WHERE r.id <= {n}",
        (catalogue.DISTRICT_QUESTION,),
    )
    conn.execute("COMMIT")


async def prepare(store: Store) -> int:
    now = int(time.time())
    for name, roles in (
        ("kyoiku", ("author",)),
        ("kato", ("approver",)),
        ("suzuki", ("approver",)),
    ):
        store.write_sync(staff_store.upsert, staff_store.StaffRecord(name, name, roles), now)
    await service.put_program(store, "bench", catalogue.CHILD_SAFETY_CODE, catalogue.child_safety())
    await service.import_districts(store, "bench", catalogue.DEMO_DISTRICTS_CSV)
    await service.put_institution(store, "bench", "board", "教育委員会", "board", True, ())
    await service.assign_staff(store, "bench", "kyoiku", "board")
    tid = await service.create_template(
        store, "kato", catalogue.CHILD_SAFETY_CODE, "不審者情報", tpl.suspicious_person()
    )
    await service.approve_template(store, "suzuki", tid)
    return tid


async def measure(store: Store, url: str, token: str, tid: int) -> tuple[float, int, int]:
    """(send call start on the monotonic clock, delivery id, recipients)."""
    config = DeliverySection()
    async with line_api(url, token, 10.0) as api:
        sender = Sender(store, api, config)
        stop = asyncio.Event()
        task = asyncio.create_task(sender.run(stop))
        await asyncio.sleep(0.2)  # the sender is idle, waiting for work
        started = time.monotonic()
        districts = [d.code for d in store.read_sync(service.districts_of)]
        sent = await service.send_alert(store, "kyoiku", tid, "board", districts, FILLED)
        sender.wake.set()  # what the API does after an alert is accepted
        try:
            while True:
                view = await delivery_service.get(store, sent.delivery_id)
                if view.status in TERMINAL:
                    break
                await asyncio.sleep(0.02)
        finally:
            stop.set()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        return started, sent.delivery_id, int(view.sent_count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10,000 guardians (< 1 min)")
    args = parser.parse_args()
    n = 10_000 if args.quick else 100_000
    folder = Path(tempfile.mkdtemp(prefix="kb-alert-", dir="/tmp"))
    sim = None
    try:
        port = free_port()
        config_path = init_dev(folder / "dev", webhook_port=free_port(), simulator_port=port)
        config = load_config(config_path)
        select_keyring(config)
        token = secrets.get_secret(secrets.CHANNEL_ACCESS_TOKEN)
        store = open_store(config)
        tid = asyncio.run(prepare(store))
        populate(store.raw_writer(), n)
        sim = subprocess.Popen(
            [sys.executable, "-c", SIM_SCRIPT, str(port), token, str(n)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert sim.stdout is not None
        assert sim.stdout.readline().strip() == "ready"
        started, _did, recipients = asyncio.run(
            measure(store, f"http://127.0.0.1:{port}", token, tid)
        )
        sim.terminate()
        out, _ = sim.communicate(timeout=60)
        stamps = json.loads(out.strip().splitlines()[-1])["stamps"]
        store.close()
    finally:
        if sim is not None and sim.poll() is None:
            sim.kill()
        shutil.rmtree(folder, ignore_errors=True)
    requests = len(stamps)
    first = min(t for t, _ in stamps)
    last = max(t for t, _ in stamps)
    rate_seen = (requests - 1) / (last - first) if last > first else float("nan")
    load = os.getloadavg()[0]
    elapsed = last - started
    rate = DeliverySection().multicast_rate_per_second
    bound = math.ceil(n / 500) / rate
    delivered = sum(k for _, k in stamps)
    print(
        f"alert: {n:,} guardians, {requests} multicasts, {delivered:,} recipients accepted;"
        f" send → last accepted {elapsed:.3f} s; rate bound {bound:.3f} s"
    )
    print(
        f"BENCH alert recipients={n} accepted={delivered} sent_count={recipients}"
        f" requests={requests} elapsed_s={elapsed:.3f} bound_s={bound:.3f}"
        f" ratio_vs_bound={elapsed / bound:.3f} target_ratio=1.10"
        f" first_accept_s={first - started:.3f} req_per_s={rate_seen:.1f}"
        f" load_avg_1m={load:.1f} cores={os.cpu_count()}"
    )


if __name__ == "__main__":
    main()

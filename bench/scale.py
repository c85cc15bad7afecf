"""City scale: one appliance with N residents (default 3.7M, Yokohama), measured end to end on
the real encrypted store.

    .venv/bin/python bench/scale.py                      # 3,700,000 residents (long: see below)
    .venv/bin/python bench/scale.py --residents 1000000
    .venv/bin/python bench/scale.py --quick              # 200,000 residents (< 1 min quiet)

Steps, each against its anchor where one exists:
1. store generation (deterministic SQL, as bench/audience.py) and the file size;
2. the audience index: built from every row, then ready after a restart (saved bitmaps);
3. audience counts for every filter shape of bench/audience.py (p50/p95);
4. a delivery to everyone: the recipient snapshot (batches with retry keys) and its time;
5. a sealed backup of the store (MB/s against a plain copy of the same file in the same run)
   and its restore onto a fresh setup;
6. the annual-expiry pass over every resident the morning after a 31 March boundary that 1 % of
   them registered before: the residents it is meant to purge (counted in SQL, independently of
   the retention code) against those it purged, and the pass's time per purged resident
   (`expiry_ms_per_purge`: the pass reads every resident too, so it is not the purge alone);
7. the daemon killed with SIGKILL in the middle of the delivery and started again: the time from
   the restart until the simulator accepts the next multicast, and that every batch was sent.
The last line: `BENCH scale residents=… gen_s=… max_p95_ms=… snapshot_s=… backup_mb_s=…
backup_vs_cp=… restore_s=… resume_s=… rss_mb=… expiry_intended=… expiry_s=… expiry_purged=…
expiry_ms_per_purge=…`; the exit status is 1 when the pass purged another number than intended
(or was not run because the rule would purge another number).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import stamped_sim
from audience import SEGMENTS, TODAY, generate, percentile
from delivery import free_port, peak_rss_mb
from kairand.backup import envelope
from kairand.backup import service as backup_service
from kairand.config import load_config
from kairand.conversation.survey import default_survey
from kairand.delivery import service
from kairand.delivery.audience import audience_count, shared_index, warm_index
from kairand.delivery.model import TERMINAL, DeliveryContent, Status
from kairand.devsetup import init_dev
from kairand.keys import secrets
from kairand.retention import worker as retention_worker
from kairand.retention.rules import Annual, RetentionRule, RetentionRules
from kairand.segments.model import SegmentFilter
from kairand.store import deliveries as delivery_queries
from kairand.store import residents as residents_queries
from kairand.store import retention as retention_store
from kairand.store import segments as segment_queries
from kairand.store import settings
from kairand.store.bootstrap import open_store, select_keyring
from kairand.store.database import Connection, Store
from kairand.timeutil import JST

EXPIRING_SHARE = 100  # one resident in 100 registered in the fiscal year that just ended
# Step 6 is the run the morning after the 31 March 2026 boundary (Annual's default 23:59 JST),
# the previous daily run the morning before it: that boundary alone is applied.
EXPIRING_AT = int(dt.datetime(2026, 3, 1, tzinfo=JST).timestamp())  # before the boundary
KEPT_AT = int(dt.datetime(2026, 5, 1, tzinfo=JST).timestamp())  # after it
BOUNDARY = int(dt.datetime(2026, 3, 31, 23, 59, tzinfo=JST).timestamp())
PREVIOUS_RUN = int(dt.datetime(2026, 3, 31, 3, tzinfo=JST).timestamp())
EXPIRY_RUN = int(dt.datetime(2026, 4, 1, 3, tzinfo=JST).timestamp())
COUNTS = ("residents", "expiry_intended", "expiry_purged")  # printed as integers


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def mark_expiring(conn: Connection) -> tuple[int, int]:
    """1 % of the residents registered before the boundary, everyone else (registered or only
    following, bench/audience.py's NOW) after it; an annual rule saved before all of them, and
    the previous retention run recorded just before the boundary (the daemon of step 7 ran one
    at the wall clock, which would make the run see another boundary).

    Returns (intended, caught): the residents the scenario means to expire, and, counted
    independently of kairand.retention in SQL, those whose registration (or, unregistered,
    follow) began before the boundary: what the annual rule must purge."""
    conn.execute(
        "UPDATE residents SET registered_at = ? WHERE registered_at IS NOT NULL", (KEPT_AT,)
    )
    # id % 20 = 0 never registered (bench/audience.py): the residue 1 is always registered.
    conn.execute(
        "UPDATE residents SET registered_at = ?, followed_at = ?"
        " WHERE registered_at IS NOT NULL AND id % ? = 1",
        (EXPIRING_AT, EXPIRING_AT, EXPIRING_SHARE),
    )
    retention_store.save_rules(
        conn,
        RetentionRules(rules=(RetentionRule(scope="registration", policy=Annual()),)),
        "bench",
        EXPIRING_AT - 86400,
    )
    settings.put(conn, retention_store.LAST_RUN_KEY, PREVIOUS_RUN)
    intended = conn.execute(
        "SELECT count(*) FROM residents WHERE registered_at = ?", (EXPIRING_AT,)
    ).fetchone()[0]
    caught = conn.execute(
        "SELECT count(*) FROM residents WHERE coalesce(registered_at, followed_at) < ?",
        (BOUNDARY,),
    ).fetchone()[0]
    return int(intended), int(caught)


def step_counts(store: Store, runs: int) -> dict[str, float]:
    survey = default_survey()
    out: dict[str, float] = {}

    async def measure() -> None:
        for name, segment in SEGMENTS.items():
            samples = []
            for _ in range(runs):
                start = time.perf_counter()
                await audience_count(store, segment, survey, today=TODAY)
                samples.append((time.perf_counter() - start) * 1000)
            out[f"{name}_p50"] = statistics.median(samples)
            out[f"{name}_p95"] = percentile(samples, 0.95)

    asyncio.run(measure())
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--residents", type=int, default=3_700_000)
    parser.add_argument("--quick", action="store_true", help="200,000 residents")
    parser.add_argument("--keep", action="store_true", help="keep the working folder (logs)")
    args = parser.parse_args()
    n = 200_000 if args.quick else args.residents
    root = Path(tempfile.mkdtemp(prefix="kairan-scale-", dir=os.environ.get("TMPDIR", "/tmp")))
    figures: dict[str, float] = {"residents": n}
    failed = False
    try:
        sim_port = free_port()
        config_path = init_dev(root / "dev", webhook_port=free_port(), simulator_port=sim_port)
        text = config_path.read_text(encoding="utf-8")
        config_path.write_text(text.replace('log_level = "info"', 'log_level = "warning"', 1))
        config = load_config(config_path)
        select_keyring(config)
        store = open_store(config)

        # 1. generation
        start = time.perf_counter()
        generate(store.raw_writer(), n, interacted_at=int(time.time()))
        figures["gen_s"] = time.perf_counter() - start
        store.checkpoint()
        db_mb = config.database_path.stat().st_size / 1e6
        print(
            f"1. generated {n:,} residents in {figures['gen_s']:.1f} s; store {db_mb:.0f} MB",
            flush=True,
        )

        # 2. index at start-up
        store.close()
        store = open_store(config)
        figures["index_build_s"] = asyncio.run(warm_index(store))
        store.close()
        store = open_store(config)
        figures["index_restart_s"] = asyncio.run(warm_index(store))
        index_mb = shared_index(store).index.memory_bytes() / 1e6
        print(
            f"2. audience index: {figures['index_build_s']:.2f} s from every row,"
            f" {figures['index_restart_s']:.2f} s after a restart, {index_mb:.1f} MB",
            flush=True,
        )

        # 3. counts
        counts = step_counts(store, 30)
        figures["max_p95_ms"] = max(v for k, v in counts.items() if k.endswith("_p95"))
        print(
            "3. audience counts p95 (ms): "
            + ", ".join(f"{k[:-4]} {v:.2f}" for k, v in counts.items() if k.endswith("_p95")),
            flush=True,
        )

        # 4. delivery snapshot
        async def approved() -> int:
            content = DeliveryContent(
                title="規模試験",
                messages=("規模試験の配信です。",),
                segment=SegmentFilter.everyone(),
            )
            did = await service.create_draft(store, "bench", content)
            await service.submit(store, did, "bench")
            await service.approve(store, did, "bench2")
            return did

        did = asyncio.run(approved())
        survey = default_survey()

        def freeze(conn: Connection) -> tuple[int, int]:
            now = int(time.time())
            delivery_queries.set_status(
                conn,
                did,
                [Status.approved.value],
                Status.sending.value,
                now,
                started_at=now,
                send_date=TODAY.isoformat(),
            )
            compiled = segment_queries.compile_for(conn, SegmentFilter.everyone(), TODAY, survey)
            recipients, batches = delivery_queries.freeze(
                conn, did, compiled, lambda: str(uuid.uuid4())
            )
            delivery_queries.set_status(
                conn,
                did,
                [Status.sending.value],
                Status.sending.value,
                now,
                recipient_count=recipients,
            )
            return recipients, batches

        start = time.perf_counter()
        recipients, batches = store.write_sync(freeze)
        figures["snapshot_s"] = time.perf_counter() - start
        figures["bench_rss_mb"] = rss_mb()
        print(
            f"4. delivery snapshot: {recipients:,} recipients in {batches:,} batches in"
            f" {figures['snapshot_s']:.1f} s"
            f" (this process's peak RSS {figures['bench_rss_mb']:.0f} MB)",
            flush=True,
        )
        store.checkpoint()
        store.close()

        # 5. backup and restore, against a plain copy of the same file
        recovery = root / "recovery"
        recovery.mkdir()
        public, private = recovery / "recovery.pub", recovery / "recovery.key"
        envelope.generate_recovery_key(private, public)
        start = time.perf_counter()
        shutil.copyfile(config.database_path, root / "plain-copy.db")
        cp_s = time.perf_counter() - start
        (root / "plain-copy.db").unlink()
        start = time.perf_counter()
        info = backup_service.create_backup(config, public, root / "backups", keep=None)
        backup_s = time.perf_counter() - start
        figures["backup_mb_s"] = db_mb / backup_s
        figures["backup_vs_cp"] = backup_s / cp_s
        restored_config = load_config(init_dev(root / "restored"))
        restored_config.database_path.unlink(missing_ok=True)
        start = time.perf_counter()
        backup_service.restore_backup(
            restored_config,
            info.path,
            private,
            backup_service.credstore_sink(root / "restored-creds"),
            force=True,
        )
        figures["restore_s"] = time.perf_counter() - start
        print(
            f"5. sealed backup {db_mb:.0f} MB in {backup_s:.1f} s"
            f" ({figures['backup_mb_s']:.0f} MB/s; plain copy {cp_s:.2f} s:"
            f" {figures['backup_vs_cp']:.1f}x); restore {figures['restore_s']:.1f} s",
            flush=True,
        )

        # 7. kill -9 in the middle of the delivery, restart, time until sending resumes
        select_keyring(config)
        token = secrets.get_secret(secrets.CHANNEL_ACCESS_TOKEN)
        sim = stamped_sim.start(sim_port, token)
        log = (root / "kairand.log").open("w")
        command = [sys.executable, "-m", "kairand", "--config", str(config_path)]
        daemon = subprocess.Popen(command, stdout=log, stderr=log)
        store = open_store(config)
        peak = 0.0
        restarted_at = 0.0
        try:
            while True:
                peak = max(peak, peak_rss_mb(daemon.pid))
                sent = store.read_sync(delivery_queries.batch_totals, did).sent
                if sent >= batches // 2:
                    break
                time.sleep(0.2)
            daemon.send_signal(signal.SIGKILL)
            daemon.wait(30)
            restarted_at = time.monotonic()
            daemon = subprocess.Popen(command, stdout=log, stderr=log)
            deadline = time.monotonic() + max(300, batches)
            while time.monotonic() < deadline:
                peak = max(peak, peak_rss_mb(daemon.pid))
                view = asyncio.run(service.get(store, did))
                if view.status in TERMINAL:
                    break
                time.sleep(0.5)
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(60)
            log.close()
            report = stamped_sim.stop(sim, timeout=120)
        stamps = report["stamps"]
        # Requests the killed daemon sent just before the kill are accepted after the simulated
        # 50-150 ms latency, possibly after the restart: resumption is the first request that
        # reached the simulator after the restart (its arrival, before the latency).
        after = [t for t in report["arrivals"] if t > restarted_at]
        figures["resume_s"] = (min(after) - restarted_at) if after else float("nan")
        figures["rss_mb"] = peak
        view = asyncio.run(service.get(store, did))
        print(
            f"7. killed at half the batches; sending resumed {figures['resume_s']:.2f} s after the"
            f" restart; status {view.status.value}, sent {view.sent_count:,} of {recipients:,};"
            f" multicasts accepted {len(stamps):,} for {batches:,} batches;"
            f" daemon peak RSS {peak:.0f} MB",
            flush=True,
        )
        assert view.sent_count == recipients and len(stamps) >= batches

        # 6. annual expiry (after the delivery, so the purge does not race it)
        intended, caught = store.write_sync(mark_expiring)
        store.checkpoint()
        figures["expiry_intended"] = intended
        if caught != intended:  # the scenario drifted: do not start an hours-long pass
            print(
                f"6. annual expiry NOT RUN: the rule would purge {caught:,} residents, the"
                f" scenario means {intended:,} ({n // EXPIRING_SHARE:,} = 1 %)",
                flush=True,
            )
            failed = True
        else:
            start = time.perf_counter()
            result = asyncio.run(
                retention_worker.run_once(
                    store,
                    None,
                    EXPIRY_RUN,
                    hmac_key=secrets.receipt_hmac_key(),
                    signing_key=secrets.signing_key(),
                )
            )
            figures["expiry_s"] = time.perf_counter() - start
            purged = result.expired.get("annual_expiry.registrations", 0)
            figures["expiry_purged"] = purged
            figures["expiry_ms_per_purge"] = 1000 * figures["expiry_s"] / max(purged, 1)
            left = store.read_sync(residents_queries.count)
            print(
                f"6. annual expiry over {n:,} residents: {purged:,} purged of {intended:,}"
                f" intended (1 % = {n // EXPIRING_SHARE:,}); {left:,} residents left;"
                f" {figures['expiry_s']:.1f} s ({purged / figures['expiry_s']:,.0f}/s,"
                f" {figures['expiry_ms_per_purge']:.2f} ms of the pass per purge)",
                flush=True,
            )
            failed = purged != intended or left != n - intended
        store.close()
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print(
        "BENCH scale "
        + " ".join(f"{k}={v:.0f}" if k in COUNTS else f"{k}={v:.2f}" for k, v in figures.items())
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

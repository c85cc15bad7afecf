"""Annual expiry throughput: the retention run (purge + signed receipt + audit entry per
registration, batches of 200, checkpoint) against its anchor, a plain DELETE of the same rows
in one transaction on the same kind of store.

    .venv/bin/python bench/retention_expiry.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import shutil
import sys
import tempfile
import time
from pathlib import Path

from kairand.config import load_config
from kairand.devsetup import init_dev
from kairand.keys import secrets
from kairand.retention import worker
from kairand.retention.rules import Annual, RetentionRule, RetentionRules
from kairand.store import retention as retention_store
from kairand.store.bootstrap import open_store, select_keyring

JST = dt.timezone(dt.timedelta(hours=9))
REGISTERED = int(dt.datetime(2026, 5, 1, tzinfo=JST).timestamp())
RUN_AT = int(dt.datetime(2027, 4, 1, 3, tzinfo=JST).timestamp())


def _fill(conn, count: int) -> None:  # type: ignore[no-untyped-def]
    conn.executemany(
        "INSERT INTO residents (line_user_id, followed_at, registered_at, last_interaction_at)"
        " VALUES (?, ?, ?, ?)",
        [(f"U{i:032x}", REGISTERED, REGISTERED, REGISTERED) for i in range(count)],
    )
    conn.executemany(
        "INSERT INTO answers (resident_id, question, value, number, answered_at)"
        " SELECT id, ?, ?, NULL, ? FROM residents",
        [("area", "honmachi", REGISTERED), ("topics", "bousai", REGISTERED)],
    )
    retention_store.save_rules(
        conn,
        RetentionRules(rules=(RetentionRule(scope="registration", policy=Annual()),)),
        "bench",
        REGISTERED - 86400,
    )


def _setup(root: Path, count: int):  # type: ignore[no-untyped-def]
    config_path = init_dev(root)
    config = load_config(config_path)
    select_keyring(config)
    store = open_store(config)
    store.write_sync(_fill, count)
    store.checkpoint()
    return store


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    count = 2_000 if args.quick else 20_000
    tmp = Path(tempfile.mkdtemp(prefix="kb-"))
    try:
        store = _setup(tmp / "a", count)
        hmac_key, signing_key = secrets.receipt_hmac_key(), secrets.signing_key()
        start = time.perf_counter()
        result = asyncio.run(
            worker.run_once(store, None, RUN_AT, hmac_key=hmac_key, signing_key=signing_key)
        )
        run_seconds = time.perf_counter() - start
        assert result.expired["annual_expiry.registrations"] == count
        store.close()

        plain = _setup(tmp / "b", count)
        start = time.perf_counter()
        plain.write_sync(
            lambda c: c.execute("DELETE FROM residents WHERE registered_at < ?", (RUN_AT,))
        )
        plain.checkpoint()
        plain_seconds = time.perf_counter() - start
        plain.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ratio = run_seconds / plain_seconds
    print(
        f"retention run: {count} registrations in {run_seconds:.2f} s "
        f"({count / run_seconds:,.0f}/s); plain DELETE: {plain_seconds:.3f} s; "
        f"ratio {ratio:.1f}x"
    )
    print(
        f"BENCH retention_expiry registrations={count} seconds={run_seconds:.2f} "
        f"per_second={count / run_seconds:.0f} ratio_vs_plain_delete={ratio:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

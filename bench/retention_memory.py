"""The retention worker's own memory on a large store: one start-up run (`run_once`, as the
daemon does at start) over N synthetic residents, in a fresh process, reporting that
process's peak RSS (VmHWM) before and after the run.

    .venv/bin/python bench/retention_memory.py            # 1M residents
    .venv/bin/python bench/retention_memory.py --quick    # 100,000 residents (< 1 min)
    .venv/bin/python bench/retention_memory.py --n 200000

The rules in force (annual registration rule + a per-question annual rule + a months rule)
make the worker read every resident's facts; the residents are recent, so the run expires
nobody — the figure is the cost of evaluating the rules, not of deleting.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kairand.config import load_config
from kairand.devsetup import init_dev
from kairand.retention import worker
from kairand.retention.rules import (
    Annual,
    MonthsAfterInteraction,
    RetentionRule,
    RetentionRules,
)
from kairand.store import retention as retention_store
from kairand.store.bootstrap import open_store, select_keyring

NOW = 1_795_000_000  # 2026-11-19 JST: no annual boundary between the rules' save and now
RULES = RetentionRules(
    rules=(
        RetentionRule(scope="registration", policy=Annual()),
        RetentionRule(scope="question", question="area", policy=Annual()),
        RetentionRule(
            scope="question", question="topics", policy=MonthsAfterInteraction(months=24)
        ),
    )
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def populate(conn, n: int) -> None:  # type: ignore[no-untyped-def]
    """N registered residents (every one with an 'area' and a 'topics' answer)."""
    recent = NOW - 86_400
    conn.execute("BEGIN")
    conn.execute(
        f"WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n})"
        " INSERT INTO residents (id, line_user_id, followed_at, registered_at,"
        f" last_interaction_at) SELECT i, printf('U%032x', i), {recent}, {recent}, {recent}"
        " FROM s"
    )
    for question, value in (("area", "honmachi"), ("topics", "bousai")):
        conn.execute(
            "INSERT INTO answers (resident_id, question, value, answered_at)"
            f" SELECT id, '{question}', '{value}', {recent} FROM residents"
        )
    retention_store.save_rules(conn, RULES, "bench", NOW - 3600)
    conn.execute("COMMIT")


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure(config_path: Path) -> None:
    """Child process: open the store, report VmHWM, run retention once, report again."""
    config = load_config(config_path)
    select_keyring(config)
    store = open_store(config)
    before = peak_rss_mb()
    started = time.monotonic()
    result = asyncio.run(worker.run_once(store, None, NOW))
    elapsed = time.monotonic() - started
    store.close()
    print(f"{before:.1f} {peak_rss_mb():.1f} {elapsed:.2f} {sum(result.expired.values())}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="100,000 residents (< 1 min)")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.n = 100_000
    if args.measure:
        measure(args.measure)
        return 0
    folder = Path(tempfile.mkdtemp(prefix="kr-", dir=os.environ.get("TMPDIR", "/tmp")))
    try:
        config_path = init_dev(folder / "dev", webhook_port=free_port(), simulator_port=free_port())
        config = load_config(config_path)
        select_keyring(config)
        store = open_store(config)
        populate(store.raw_writer(), args.n)
        store.close()
        out = subprocess.run(
            [sys.executable, __file__, "--measure", str(config_path)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        before, after, elapsed, expired = out.split()[-4:]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(
        f"BENCH retention_memory n={args.n} rss_mb_before_run={before} rss_mb_peak={after}"
        f" rss_mb_run={float(after) - float(before):.1f} run_s={elapsed} expired={expired}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

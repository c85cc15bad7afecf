"""Audience count latency: p50/p95 of a mixed segment (age range + area + topic) on the real
encrypted store through `kairand.delivery.audience.audience_count`, and the same compiled
query on plain stdlib sqlite3 with the same schema and the same data, in the same run.

    .venv/bin/python bench/audience.py            # 10k, 100k, 1M residents
    .venv/bin/python bench/audience.py --quick    # 10k, 100k

Data is generated inside each database by the same deterministic SQL (no RNG), so both hold
identical rows: areas over 15 options, 3 genders, birth years 1930–2015, each of 6 topics
chosen by ~35%, 5% unregistered, 2% stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import secrets
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from kairand.conversation.survey import AREAS, TOPICS, default_survey
from kairand.delivery.audience import audience_count
from kairand.segments.compiler import compile_segment
from kairand.segments.model import SegmentFilter
from kairand.store import segments as segment_queries
from kairand.store.database import Store
from kairand.store.migrations import migrate

SEGMENT = SegmentFilter.model_validate(
    {
        "conditions": [
            {"question": "birth_year", "age_from": 30, "age_to": 49},
            {"question": "area", "any_of": ["asahi", "minato"]},
            {"question": "topics", "any_of": ["kosodate"]},
        ]
    }
)
TODAY = dt.date(2026, 6, 1)
NOW = 1_780_000_000


def _values(rows: list[tuple[int, str]]) -> str:
    return ", ".join(f"({k}, '{code}')" for k, code in rows)


def generate(conn, n: int) -> None:  # type: ignore[no-untyped-def]
    """Fill a migrated store with N synthetic residents (deterministic, same on any engine)."""
    seq = f"WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n})"
    conn.execute("BEGIN")
    conn.execute(
        f"{seq} INSERT INTO residents (id, line_user_id, followed_at, registered_at,"
        " deliveries_stopped, last_interaction_at)"
        f" SELECT i, printf('U%032x', i), {NOW}, CASE WHEN i % 20 = 0 THEN NULL ELSE {NOW} END,"
        f" CASE WHEN i % 50 = 7 THEN 1 ELSE 0 END, {NOW} FROM s"
    )
    areas = _values([(k, code) for k, (code, _) in enumerate(AREAS)])
    conn.execute(
        f"{seq}, m(k, code) AS (VALUES {areas})"
        " INSERT INTO answers (resident_id, question, value, number, answered_at)"
        f" SELECT i, 'area', m.code, NULL, {NOW} FROM s JOIN m ON m.k = (i * 7919) % 15"
    )
    genders = _values([(0, "female"), (1, "male"), (2, "other")])
    conn.execute(
        f"{seq}, m(k, code) AS (VALUES {genders})"
        " INSERT INTO answers (resident_id, question, value, number, answered_at)"
        f" SELECT i, 'gender', m.code, NULL, {NOW} FROM s JOIN m ON m.k = (i * 104729) % 3"
    )
    conn.execute(
        f"{seq} INSERT INTO answers (resident_id, question, value, number, answered_at)"
        " SELECT i, 'birth_year', printf('%04d', y), y, "
        f"{NOW} FROM (SELECT i, 1930 + ((i * 2654435761) % 4294967296) % 86 AS y FROM s)"
    )
    for t, (code, _) in enumerate(TOPICS):
        prime = (15485863, 32452843, 49979687, 67867967, 86028121, 104395301)[t]
        conn.execute(
            f"{seq} INSERT INTO answers (resident_id, question, value, number, answered_at)"
            f" SELECT i, 'topics', '{code}', NULL, {NOW} FROM s"
            f" WHERE ((i * {prime}) % 1000003) % 100 < 35"
        )
    conn.execute("COMMIT")
    conn.execute("ANALYZE")


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]


async def time_kairan(store: Store, runs: int) -> tuple[list[float], int]:
    survey = default_survey()
    out = []
    count = 0
    for _ in range(runs):
        start = time.perf_counter()
        count = await audience_count(store, SEGMENT, survey, today=TODAY)
        out.append((time.perf_counter() - start) * 1000)
    return out, count


def time_plain(path: Path, runs: int) -> tuple[list[float], int]:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    # Same page cache as kairan's counting connection (a tuning, not the schema).
    conn.execute(f"PRAGMA cache_size = -{segment_queries.COUNT_CACHE_KIB}")
    # The same query kairan runs: compiled with this database's facet map.
    compiled = segment_queries.compile_for(conn, SEGMENT, TODAY, default_survey())
    sql, params = compiled.count_sql()
    out = []
    count = 0
    for _ in range(runs):
        start = time.perf_counter()
        count = conn.execute(sql, params).fetchone()[0]
        out.append((time.perf_counter() - start) * 1000)
    conn.close()
    return out, count


def time_plain_answers_plan(path: Path, runs: int) -> list[float]:
    """The general fallback plan (no facets), for reference."""
    conn = sqlite3.connect(path, isolation_level=None)
    sql, params = compile_segment(SEGMENT, TODAY, default_survey()).count_sql()
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        conn.execute(sql, params).fetchone()
        out.append((time.perf_counter() - start) * 1000)
    conn.close()
    return out


def bench_size(n: int, runs: int, folder: Path) -> dict[str, float]:
    enc_path = folder / f"enc-{n}.db"
    plain_path = folder / f"plain-{n}.db"
    store = Store(enc_path, secrets.token_bytes(32))
    migrate(store.raw_writer())
    t0 = time.perf_counter()
    generate(store.raw_writer(), n)
    gen_enc = time.perf_counter() - t0
    plain = sqlite3.connect(plain_path, isolation_level=None)
    plain.execute("PRAGMA journal_mode = WAL")
    migrate(plain)
    generate(plain, n)
    plain.close()
    # Warm both page caches / OS caches once, then interleave nothing: same runs each.
    asyncio.run(time_kairan(store, 2))
    time_plain(plain_path, 2)
    kairan_ms, kairan_count = asyncio.run(time_kairan(store, runs))
    plain_ms, plain_count = time_plain(plain_path, runs)
    fallback_ms = time_plain_answers_plan(plain_path, max(5, runs // 10))
    store.close()
    assert kairan_count == plain_count, (kairan_count, plain_count)
    result = {
        "n": n,
        "count": kairan_count,
        "p50": statistics.median(kairan_ms),
        "p95": percentile(kairan_ms, 0.95),
        "plain_p50": statistics.median(plain_ms),
        "plain_p95": percentile(plain_ms, 0.95),
        "gen_s": gen_enc,
        "fallback_p50": statistics.median(fallback_ms),
    }
    result["ratio_p95"] = result["p95"] / result["plain_p95"]
    result["ratio_p50"] = result["p50"] / result["plain_p50"]
    print(
        f"{n:>9,} residents  audience {kairan_count:>7,}  kairan p50 {result['p50']:7.2f} ms"
        f"  p95 {result['p95']:7.2f} ms | plain sqlite3 p50 {result['plain_p50']:7.2f} ms"
        f"  p95 {result['plain_p95']:7.2f} ms | ratio p95 {result['ratio_p95']:.2f}"
        f"  (generated in {gen_enc:.1f} s; answers-table fallback plan, plain:"
        f" p50 {result['fallback_p50']:.1f} ms)",
        flush=True,
    )
    for path in (enc_path, plain_path):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10k and 100k only (< 1 min)")
    parser.add_argument("--runs", type=int, default=0, help="queries per size (default: auto)")
    args = parser.parse_args()
    sizes = [10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000]
    folder = Path(tempfile.mkdtemp(prefix="kairan-bench-", dir=os.environ.get("TMPDIR", "/tmp")))
    try:
        results = [
            bench_size(n, args.runs or (40 if n >= 1_000_000 else 100), folder) for n in sizes
        ]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    fields = []
    for r in results:
        tag = f"{int(r['n']) // 1000}k"
        fields += [
            f"p50_ms_{tag}={r['p50']:.2f}",
            f"p95_ms_{tag}={r['p95']:.2f}",
            f"ratio_p95_{tag}={r['ratio_p95']:.2f}",
        ]
    print("BENCH audience " + " ".join(fields))
    return 0


if __name__ == "__main__":
    sys.exit(main())

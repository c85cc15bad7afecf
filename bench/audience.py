"""Audience count latency for every filter shape: p50/p95 on the real encrypted store through
`kairand.delivery.audience.audience_count` (the in-memory bitmap index kept by the store's
change log), the same compiled query on plain stdlib sqlite3 with the same schema and data,
and a bare in-memory bitmap anchor (pyroaring, built from the same rows, no store or thread
in the way), in the same run. Also the index's memory and its build time at start-up.

    .venv/bin/python bench/audience.py            # 10k, 100k, 1M residents
    .venv/bin/python bench/audience.py --quick    # 10k, 100k

Data is generated inside each database by the same deterministic SQL (no RNG), so both hold
identical rows: areas over 15 options, 3 genders, birth years 1930–2015, each of 6 topics
chosen by ~35%, 5% unregistered, 2% stopped; 1 in 8 joined the program `kodomo` (most of them
registered in it).
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
from kairand.delivery.audience import audience_count, shared_index, warm_index
from kairand.segments.bitmap import AudienceIndex
from kairand.segments.compiler import FacetMap
from kairand.segments.model import SegmentFilter
from kairand.store import segments as segment_queries
from kairand.store.database import Store
from kairand.store.migrations import migrate

SHAPES = {
    "topic": {"conditions": [{"question": "topics", "any_of": ["kosodate"]}]},
    "area": {"conditions": [{"question": "area", "any_of": ["minato"]}]},
    "age": {"conditions": [{"question": "birth_year", "age_from": 65}]},
    "mixed": {
        "conditions": [
            {"question": "birth_year", "age_from": 30, "age_to": 49},
            {"question": "area", "any_of": ["asahi", "minato"]},
            {"question": "topics", "any_of": ["kosodate"]},
        ]
    },
    "wide": {
        "conditions": [
            {"question": "area", "any_of": ["asahi", "minato", "honmachi", "ekimae", "kitamachi"]},
            {"question": "topics", "any_of": ["kosodate", "bousai", "event"]},
            {"question": "birth_year", "age_from": 20, "age_to": 64},
            {"question": "gender", "any_of": ["female", "other"]},
        ]
    },
    "all": {"all_registered": True},
    # A program's registered members (1 in 8 residents joined kodomo, most registered).
    "program": {"program": "kodomo", "conditions": [{"question": "area", "any_of": ["minato"]}]},
}
SEGMENTS = {name: SegmentFilter.model_validate(body) for name, body in SHAPES.items()}
TODAY = dt.date(2026, 6, 1)
NOW = 1_780_000_000


def _values(rows: list[tuple[int, str]]) -> str:
    return ", ".join(f"({k}, '{code}')" for k, code in rows)


def generate(conn, n: int, interacted_at: int = NOW) -> None:  # type: ignore[no-untyped-def]
    """Fill a migrated store with N synthetic residents (deterministic, same on any engine).
    INTERACTED_AT: their last interaction (a benchmark that runs the daemon passes the current
    time, so the 24-month inactivity rule (S20) never purges them mid-run)."""
    seq = f"WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n})"
    conn.execute("BEGIN")
    conn.execute(
        f"{seq} INSERT INTO residents (id, line_user_id, followed_at, registered_at,"
        " deliveries_stopped, last_interaction_at)"
        f" SELECT i, printf('U%032x', i), {NOW}, CASE WHEN i % 20 = 0 THEN NULL ELSE {NOW} END,"
        f" CASE WHEN i % 50 = 7 THEN 1 ELSE 0 END, {int(interacted_at)} FROM s"
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
    conn.execute(
        "INSERT INTO programs (code, name, is_default, definition, created_at, updated_at)"
        f" VALUES ('kodomo', 'こども', 0, '{{}}', {NOW}, {NOW})"
    )
    conn.execute(
        f"{seq} INSERT INTO program_members (program, resident_id, consent_version,"
        f" consented_at, registered_at) SELECT 'kodomo', i, 1, {NOW},"
        f" CASE WHEN i % 40 = 3 THEN NULL ELSE {NOW} END FROM s WHERE i % 8 = 3"
    )
    conn.execute("COMMIT")
    conn.execute("ANALYZE")


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]


async def time_kairan(store: Store, segment: SegmentFilter, runs: int) -> tuple[list[float], int]:
    survey = default_survey()
    out = []
    count = 0
    for _ in range(runs):
        start = time.perf_counter()
        count = await audience_count(store, segment, survey, today=TODAY)
        out.append((time.perf_counter() - start) * 1000)
    return out, count


def time_plain(
    conn: sqlite3.Connection, segment: SegmentFilter, runs: int
) -> tuple[list[float], int]:
    # The same query kairan's SQL path runs: compiled with this database's facet map.
    compiled = segment_queries.compile_for(conn, segment, TODAY, default_survey())  # type: ignore[arg-type]
    sql, params = compiled.count_sql()
    out = []
    count = 0
    for _ in range(runs):
        start = time.perf_counter()
        count = conn.execute(sql, params).fetchone()[0]
        out.append((time.perf_counter() - start) * 1000)
    return out, count


def time_anchor(
    index: AudienceIndex, facets: FacetMap, segment: SegmentFilter, runs: int
) -> tuple[list[float], int]:
    out = []
    count = 0
    for _ in range(runs):
        start = time.perf_counter()
        count = index.count(segment, TODAY, facets)
        out.append((time.perf_counter() - start) * 1000)
    return out, count


def summary(samples: list[float]) -> tuple[float, float]:
    return statistics.median(samples), percentile(samples, 0.95)


def bench_size(n: int, runs: int, folder: Path) -> dict[str, float]:
    enc_path = folder / f"enc-{n}.db"
    plain_path = folder / f"plain-{n}.db"
    key = secrets.token_bytes(32)
    store = Store(enc_path, key)
    migrate(store.raw_writer())
    t0 = time.perf_counter()
    generate(store.raw_writer(), n)
    gen_enc = time.perf_counter() - t0
    store.close()
    plain = sqlite3.connect(plain_path, isolation_level=None)
    plain.execute("PRAGMA journal_mode = WAL")
    migrate(plain)  # type: ignore[arg-type]
    generate(plain, n)
    plain.execute(f"PRAGMA cache_size = -{segment_queries.COUNT_CACHE_KIB}")
    # Start-up as the daemon does it: open the store, build the index before serving.
    # First start: every facet row is read (then the index is saved in the store).
    store = Store(enc_path, key)
    build_s = asyncio.run(warm_index(store))
    store.close()
    # Every later start: the saved bitmaps plus the changes logged since.
    store = Store(enc_path, key)
    restart_s = asyncio.run(warm_index(store))
    index = shared_index(store).index
    index_mb = index.memory_bytes() / 1e6
    anchor = AudienceIndex()
    segment_queries.sync_index(plain, anchor)  # type: ignore[arg-type]
    facets = segment_queries.facet_map(plain)  # type: ignore[arg-type]
    result: dict[str, float] = {
        "n": n,
        "gen_s": gen_enc,
        "build_s": build_s,
        "restart_s": restart_s,
        "index_mb": index_mb,
    }
    print(
        f"{n:>9,} residents (generated in {gen_enc:.1f} s): index built from rows in"
        f" {build_s:.2f} s, ready after a restart in {restart_s:.2f} s, {index_mb:.1f} MB",
        flush=True,
    )
    for name, segment in SEGMENTS.items():
        asyncio.run(time_kairan(store, segment, 2))
        time_plain(plain, segment, 1)
        kairan_ms, kairan_count = asyncio.run(time_kairan(store, segment, runs))
        plain_ms, plain_count = time_plain(plain, segment, max(5, runs // 4))
        anchor_ms, anchor_count = time_anchor(index, facets, segment, runs)
        assert kairan_count == plain_count == anchor_count, (kairan_count, plain_count)
        p50, p95 = summary(kairan_ms)
        plain_p50, plain_p95 = summary(plain_ms)
        anchor_p50, anchor_p95 = summary(anchor_ms)
        result[f"{name}_p50"] = p50
        result[f"{name}_p95"] = p95
        result[f"{name}_vs_plain"] = p95 / plain_p95
        result[f"{name}_vs_bitmap"] = p95 / anchor_p95
        print(
            f"  {name:<6} audience {kairan_count:>9,}  kairan p50 {p50:6.2f} p95 {p95:6.2f} ms"
            f" | plain sqlite3 p50 {plain_p50:7.2f} p95 {plain_p95:7.2f} ms"
            f" | bare bitmap p50 {anchor_p50:6.3f} p95 {anchor_p95:6.3f} ms",
            flush=True,
        )
    store.close()
    plain.close()
    for path in (enc_path, plain_path):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10k and 100k only (< 1 min)")
    parser.add_argument("--runs", type=int, default=0, help="queries per size (default: auto)")
    parser.add_argument("--sizes", default="", help="comma-separated resident counts")
    args = parser.parse_args()
    sizes = [10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000]
    if args.sizes:
        sizes = [int(v) for v in args.sizes.split(",")]
    folder = Path(tempfile.mkdtemp(prefix="kairan-bench-", dir=os.environ.get("TMPDIR", "/tmp")))
    try:
        results = [
            bench_size(n, args.runs or (60 if n >= 1_000_000 else 100), folder) for n in sizes
        ]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    fields = []
    for r in results:
        tag = f"{int(r['n']) // 1000}k"
        worst = max(r[f"{name}_p95"] for name in SEGMENTS)
        worst_plain = max(r[f"{name}_vs_plain"] for name in SEGMENTS)
        fields += [
            f"max_p95_ms_{tag}={worst:.2f}",
            f"mixed_p95_ms_{tag}={r['mixed_p95']:.2f}",
            f"max_ratio_vs_plain_{tag}={worst_plain:.3f}",
            f"build_s_{tag}={r['build_s']:.2f}",
            f"restart_s_{tag}={r['restart_s']:.2f}",
            f"index_mb_{tag}={r['index_mb']:.1f}",
        ]
    print("BENCH audience " + " ".join(fields))
    return 0


if __name__ == "__main__":
    sys.exit(main())

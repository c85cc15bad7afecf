"""The encrypted store: encryption at rest, keys, migrations, schema guard (K4)."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from kairand.config import Config
from kairand.errors import BlockingCallError, ExitCode, SchemaTooNewError, SecretError
from kairand.store import settings
from kairand.store.database import Connection, Store, open_connection, transaction
from kairand.store.migrations import all_migrations, applied_versions, latest_version, migrate

MARKER = "KAIRAN-PLAINTEXT-MARKER-3f9a1c"


def test_file_is_unreadable_without_key_and_holds_no_plaintext(store: Store) -> None:
    """K4: the store file and its WAL are ciphertext: plain sqlite3 cannot read them and a
    marker written through the store appears in neither."""
    store.write_sync(settings.put, "marker", MARKER)
    wal = Path(f"{store.path}-wal")
    assert wal.exists() and wal.stat().st_size > 0, "the marker should still be in the WAL"
    for path in (store.path, wal):
        assert MARKER.encode() not in path.read_bytes()
        assert MARKER.encode("utf-16-le") not in path.read_bytes()
    store.checkpoint()
    assert MARKER.encode() not in store.path.read_bytes()
    plain = sqlite3.connect(store.path)
    with pytest.raises(sqlite3.DatabaseError, match="not a database"):
        plain.execute("SELECT * FROM sqlite_master").fetchall()
    plain.close()
    assert store.read_sync(settings.get, "marker") == MARKER


def test_wrong_key_is_a_key_error(store: Store) -> None:
    """K4: a wrong key is reported as a key problem with a hint, not as a corrupt file."""
    with pytest.raises(SecretError) as caught:
        open_connection(store.path, b"\x01" * 32)
    assert caught.value.exit_code == ExitCode.KEY
    assert "db-key" in caught.value.hint


def test_wrong_key_exit_code_from_kairand(dev_setup: Path) -> None:
    """K4: kairand exits with the key exit code (77) and an explained message."""
    keyfile = dev_setup.parent / "keys" / "db-key"
    keyfile.write_text("ab" * 32)
    result = subprocess.run(
        [sys.executable, "-m", "kairand", "--config", str(dev_setup), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == int(ExitCode.KEY) == 77
    assert "database key does not open" in result.stderr
    assert "hint:" in result.stderr


def test_migrations_from_empty_and_rerun_are_idempotent(config: Config, store: Store) -> None:
    """Migrations apply once from empty; running them again changes nothing."""
    conn = store.raw_writer()
    assert applied_versions(conn) == {m.version for m in all_migrations()}
    schema_before = conn.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
    assert migrate(conn) == []
    assert conn.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall() == schema_before
    descriptions = [r[0] for r in conn.execute("SELECT description FROM schema_version")]
    assert all(descriptions)


def test_each_migration_is_its_own_transaction(store: Store) -> None:
    """A failing statement rolls back only its own migration."""
    conn = store.raw_writer()
    with pytest.raises(Exception, match="syntax error"), transaction(conn):
        conn.execute("CREATE TABLE half_done (x)")
        conn.execute("THIS IS NOT SQL")
    assert conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'half_done'").fetchone() is None


def test_newer_schema_is_refused(store: Store) -> None:
    """A store written by a newer Kairan is refused with the schema exit code."""
    conn = store.raw_writer()
    with transaction(conn):
        conn.execute(
            "INSERT INTO schema_version (version, description, applied_at) VALUES (?, 'x', 0)",
            (latest_version() + 1,),
        )
    with pytest.raises(SchemaTooNewError) as caught:
        migrate(conn)
    assert caught.value.exit_code == ExitCode.SCHEMA


async def test_store_work_runs_off_the_event_loop(store: Store) -> None:
    """Store work happens in its threads; a synchronous call on the loop thread is refused."""
    store.bind_loop()
    await store.write(settings.put, "k", 1)
    assert await store.read(settings.get, "k") == 1
    with pytest.raises(BlockingCallError):
        store.read_sync(settings.get, "k")
    results = await asyncio.gather(*(store.read(settings.get, "k") for _ in range(20)))
    assert results == [1] * 20


async def test_failed_write_leaves_nothing(store: Store) -> None:
    """A write function that raises rolls back everything it did (no partial write)."""

    def half(conn: Connection, key: str) -> None:
        settings.put(conn, key, "first")
        raise ValueError("boom")

    with pytest.raises(ValueError):
        await store.write(half, "partial")
    assert await store.read(settings.get, "partial") is None


async def test_full_disk_is_a_clear_error_and_loses_nothing(store: Store) -> None:
    """A full disk (SQLITE_FULL, produced here with max_page_count) rolls the write back whole
    and raises StoreFullError with an operator hint; earlier data stays readable."""
    from kairand.store.database import StoreFullError

    await store.write(settings.put, "before", "kept")
    pages = store.raw_writer().execute("PRAGMA page_count").fetchone()[0]
    store.raw_writer().execute(f"PRAGMA max_page_count = {pages}")

    def fill(conn: Connection) -> None:
        settings.put(conn, "partial", "x")
        for i in range(2000):
            settings.put(conn, f"big{i}", "y" * 1000)

    with pytest.raises(StoreFullError) as caught:
        await store.write(fill)
    assert caught.value.exit_code == ExitCode.STORE
    assert "disk is full" in caught.value.message
    assert await store.read(settings.get, "partial") is None
    assert await store.read(settings.get, "before") == "kept"


async def test_urgent_write_goes_before_queued_ordinary_writes(store: Store) -> None:
    """An urgent write (a webhook's events, an API call's audit entry) waits only for the
    transaction already running, never for the ordinary writes queued behind it, and a long
    transaction can see that it is waiting (Store.urgent_waiting) and end early."""
    started = asyncio.Event()
    release = asyncio.Event()
    loop = asyncio.get_running_loop()
    order: list[str] = []
    seen_waiting: list[bool] = []

    def running(conn: Connection) -> None:
        loop.call_soon_threadsafe(started.set)
        asyncio.run_coroutine_threadsafe(release.wait(), loop).result(10)
        seen_waiting.append(store.urgent_waiting())
        order.append("running")

    def step(conn: Connection, name: str) -> str:
        settings.put(conn, f"order.{name}", len(order))
        order.append(name)
        return name

    first = asyncio.create_task(store.write(running))
    await started.wait()
    ordinary = [asyncio.create_task(store.write(step, f"ordinary{i}")) for i in range(3)]
    await asyncio.sleep(0)
    urgent = asyncio.create_task(store.write(step, "urgent", urgent=True))
    await asyncio.sleep(0.05)
    assert not urgent.done()  # the running transaction is never interrupted
    release.set()
    assert await urgent == "urgent"
    await asyncio.gather(first, *ordinary)
    assert order == ["running", "urgent", "ordinary0", "ordinary1", "ordinary2"]
    assert seen_waiting == [True]
    assert not store.urgent_waiting()
    assert await store.read(settings.get, "order.urgent") == 1


async def test_a_long_read_never_holds_the_readers(store: Store) -> None:
    """A read of seconds (the audience index built from every row: `long=True`) runs on its
    own thread: every ordinary read meanwhile is answered at once, on both readers."""
    await store.write(settings.put, "k", 1)
    loop = asyncio.get_running_loop()
    started = asyncio.Event()
    release = asyncio.Event()

    def long_read(conn: Connection) -> int:
        loop.call_soon_threadsafe(started.set)
        asyncio.run_coroutine_threadsafe(release.wait(), loop).result(10)
        return int(settings.get(conn, "k"))

    # Two long reads: on the readers they would hold both (read_threads=2).
    running = [asyncio.create_task(store.read(long_read, long=True)) for _ in range(2)]
    await started.wait()
    ordinary = asyncio.gather(*(store.read(settings.get, "k") for _ in range(4)))
    assert await asyncio.wait_for(ordinary, 5) == [1] * 4
    assert not any(task.done() for task in running)
    release.set()
    assert await asyncio.gather(*running) == [1, 1]


async def test_failed_urgent_write_rolls_back_alone(store: Store) -> None:
    """A failing write of either lane raises in its caller and changes nothing; the next
    write runs as usual."""

    def fail(conn: Connection) -> None:
        settings.put(conn, "never", 1)
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        await store.write(fail, urgent=True)
    await store.write(settings.put, "after", 2)
    assert await store.read(settings.get, "never") is None
    assert await store.read(settings.get, "after") == 2


def test_current_survey_follows_every_saved_version(store: Store) -> None:
    """survey.current caches parsed definitions by content: a new version is read at once,
    and going back to an earlier text gives that text's definition, never the cached one."""
    from kairand.conversation.survey import default_survey
    from kairand.store import survey

    first = default_survey()
    second = first.model_copy(update={"welcome": first.welcome + "（改訂）"})
    v1 = store.write_sync(survey.save, first, "test")
    assert store.read_sync(survey.current) == (v1, first)
    v2 = store.write_sync(survey.save, second, "test")
    assert store.read_sync(survey.current) == (v2, second)
    v3 = store.write_sync(survey.save, first, "test")
    assert store.read_sync(survey.current) == (v3, first)

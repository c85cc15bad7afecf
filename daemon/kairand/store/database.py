"""Opening the SQLCipher file and running work on it off the event loop.

One writer thread holds the only write connection (SQLite allows one writer anyway); a small
pool of reader threads each hold their own connection (WAL lets them read while the writer
writes). Coroutines hand functions `fn(conn, *args)` to those threads; the functions themselves
live in the query modules beside this one.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import sqlcipher3

from kairand.errors import BlockingCallError, SecretError, StoreError
from kairand.logs import get_logger

log = get_logger(__name__)
T = TypeVar("T")

if TYPE_CHECKING:  # sqlcipher3 ships no stubs; its API is the stdlib sqlite3 one.
    # `X as X`: re-exported for the query modules (mypy --strict: explicit re-export).
    from sqlite3 import Connection as Connection
    from sqlite3 import DatabaseError as DatabaseError
    from sqlite3 import IntegrityError as IntegrityError
else:
    Connection = sqlcipher3.Connection
    DatabaseError = sqlcipher3.DatabaseError
    IntegrityError = sqlcipher3.IntegrityError


def open_connection(path: Path, key: bytes, *, readonly: bool = False) -> Connection:
    """Open PATH with the raw 256-bit KEY and set every pragma in one place.

    Raises SecretError when KEY does not open the file, StoreError when it cannot be opened.
    """
    if len(key) != 32:
        raise SecretError("the database key must be 32 bytes (256 bits)")
    try:
        uri = f"file:{path}?mode=ro" if readonly else f"file:{path}"
        conn: Connection = sqlcipher3.connect(
            uri, uri=True, isolation_level=None, check_same_thread=False, timeout=30
        )
    except sqlcipher3.OperationalError as exc:
        raise StoreError(
            f"cannot open the store {path}: {exc}", "check the path and its permissions"
        ) from None
    try:
        # The key must be the first statement. bytes.hex() cannot carry a quote: no injection.
        conn.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
        conn.execute("PRAGMA cipher_log_level = NONE")
        # The first read decrypts page 1: a wrong key fails here, not later.
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlcipher3.DatabaseError as exc:
        conn.close()
        if "not a database" in str(exc):
            raise SecretError(
                f"the database key does not open {path}",
                "check the credential db-key: it must be the key this store was created with",
            ) from None
        raise StoreError(f"cannot read the store {path}: {exc}") from None
    if not readonly:
        conn.execute("PRAGMA journal_mode = WAL")
    # FULL: a lost commit could mean a resident messaged twice or a purge undone.
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA busy_timeout = 30000")
    # Deleted personal data is overwritten in the file, not just unlinked from the b-tree.
    conn.execute("PRAGMA secure_delete = ON")
    return conn


class StoreFullError(StoreError):
    """The disk (or the store's size limit) is full: the write was rolled back whole."""


def _translate(exc: Exception) -> Exception:
    if isinstance(exc, sqlcipher3.OperationalError) and "full" in str(exc):
        return StoreFullError(
            "the store could not be written: the disk is full (nothing was changed)",
            "free space on the disk holding the state directory; the daemon retries",
        )
    return exc


@contextlib.contextmanager
def transaction(conn: Connection, immediate: bool = True) -> Iterator[Connection]:
    """BEGIN IMMEDIATE … COMMIT, or ROLLBACK on any exception. A full disk becomes
    StoreFullError after the rollback, so callers can answer "try again later"."""
    conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        translated = _translate(exc) if isinstance(exc, Exception) else exc
        if translated is not exc:
            raise translated from None
        raise


_Job = tuple[Callable[..., Any], tuple[Any, ...], "asyncio.Future[Any]"]


READER_CACHE_KIB = 2048
"""Page cache of each reader's connection (SQLCipher's default is 8 MB a connection). Readers
answer point reads and pages through tables once (the retention pass, the audience index
build): a full cache each left the daemon 8 MB larger per reader after its start-up passes
over a million residents, and a bigger one saves nothing on a single pass. An audience
count by SQL sets its own (kairand.store.segments)."""

WRITER_CACHE_KIB = 6144
"""Page cache of the writer's connection, below SQLCipher's 8 MB: a 1M delivery in a daemon
that has been running peaks at 149 MB instead of 151 at the same rate (bench/delivery.py
--warm, session 6). At 4 MB the staff API's p99 during a delivery under webhook load rose
from ~30 to ~50 ms (claims and receipts re-read pages), so not lower."""


class Store:
    """The daemon's handle on the store. Construct, then `migrate()`, then use `write`/`read`.

    Writes run one at a time on the writer thread, in two lanes: `write(fn, urgent=True)` (a
    webhook's events, an API call's audit entry: short transactions somebody waits on) goes
    before every queued ordinary write, and long batch transactions (the inbox worker's) end
    early when `urgent_waiting()`. An urgent write waits at most for the transaction already
    running, not for the queue behind it.
    """

    def __init__(self, path: Path, key: bytes, read_threads: int = 2) -> None:
        self.path = path
        self._key = key
        self._writer_pool = ThreadPoolExecutor(1, thread_name_prefix="kairan-db-writer")
        self._reader_pool = ThreadPoolExecutor(read_threads, thread_name_prefix="kairan-db-reader")
        # Reads that take seconds (the audience index built from every row) run here, each on
        # a connection of its own, so they never hold a reader the staff API and the sender
        # are waiting for.
        self._long_pool = ThreadPoolExecutor(1, thread_name_prefix="kairan-db-long-read")
        self._local = threading.local()
        self._connections: list[Connection] = []
        self._lock = threading.Lock()
        self._jobs_lock = threading.Lock()
        self._urgent: deque[_Job] = deque()
        self._ordinary: deque[_Job] = deque()
        self._loop_thread: int | None = None
        self._closed = False
        # Open one connection now so a wrong key or missing file fails at start-up.
        self._writer = open_connection(path, key)
        self._writer.execute(f"PRAGMA cache_size = -{WRITER_CACHE_KIB}")
        self._connections.append(self._writer)

    # -- synchronous API (kairanctl, tests, and inside the worker threads) -----------------

    def _guard(self) -> None:
        if self._loop_thread is not None and threading.get_ident() == self._loop_thread:
            raise BlockingCallError("synchronous store call on the event loop thread")

    def write_sync(self, fn: Callable[..., T], *args: Any) -> T:
        """Run fn(conn, *args) in one write transaction on the calling thread."""
        self._guard()
        with self._lock, transaction(self._writer):
            return fn(self._writer, *args)

    def read_sync(self, fn: Callable[..., T], *args: Any) -> T:
        self._guard()
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = open_connection(self.path, self._key)
            conn.execute(f"PRAGMA cache_size = -{READER_CACHE_KIB}")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        with transaction(conn, immediate=False):
            return fn(conn, *args)

    def raw_writer(self) -> Connection:
        """The write connection, for migrations and maintenance run before the loop starts."""
        self._guard()
        return self._writer

    # -- asynchronous API (the daemon) -----------------------------------------------------

    def bind_loop(self) -> None:
        """From now on, synchronous calls on this (the loop's) thread raise BlockingCallError."""
        self._loop_thread = threading.get_ident()

    async def write(self, fn: Callable[..., T], *args: Any, urgent: bool = False) -> T:
        """Run fn(conn, *args) in one write transaction on the writer thread. URGENT: before
        every ordinary write still queued (see the class)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        job: _Job = (fn, args, future)
        lane = self._urgent if urgent else self._ordinary
        with self._jobs_lock:
            lane.append(job)
        try:
            # One slot per job: the writer thread runs the next job by lane, not this one.
            loop.run_in_executor(self._writer_pool, self._run_next_write, loop)
        except RuntimeError:  # the store is closed
            with self._jobs_lock:
                lane.remove(job)
            raise
        return await future

    def urgent_waiting(self) -> bool:
        """An urgent write is queued: a long transaction should commit what it has and end."""
        return bool(self._urgent)

    def _run_next_write(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._jobs_lock:
            fn, args, future = self._urgent.popleft() if self._urgent else self._ordinary.popleft()
        if future.cancelled():
            return
        try:
            result = self._write_in_thread(fn, args)
        except BaseException as exc:  # handed to the waiting coroutine
            loop.call_soon_threadsafe(_settle, future, None, exc)
        else:
            loop.call_soon_threadsafe(_settle, future, result, None)

    async def read(self, fn: Callable[..., T], *args: Any, long: bool = False) -> T:
        """Run fn(conn, *args) in one read transaction on a reader thread. LONG: a read of
        seconds, on its own thread (one at a time), not on the readers others wait for."""
        loop = asyncio.get_running_loop()
        if long:
            return await loop.run_in_executor(self._long_pool, self._long_read, fn, args)
        return await loop.run_in_executor(self._reader_pool, self._read_in_thread, fn, args)

    def _long_read(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        """On a connection of its own, closed afterwards: what a pass over every row cached
        (and the connection's buffers) is not kept for the daemon's life."""
        conn = open_connection(self.path, self._key)
        try:
            conn.execute(f"PRAGMA cache_size = -{READER_CACHE_KIB}")
            with transaction(conn, immediate=False):
                return fn(conn, *args)
        finally:
            conn.close()

    def _write_in_thread(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        with self._lock, transaction(self._writer):
            return fn(self._writer, *args)

    def _read_in_thread(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        return self.read_sync(fn, *args)

    def checkpoint(self) -> None:
        """Fold the WAL into the main file and truncate it (after purges and masking)."""
        self._guard()
        with self._lock:
            self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    async def acheckpoint(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._writer_pool, self.checkpoint)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._writer_pool.shutdown(wait=True)
        self._reader_pool.shutdown(wait=True)
        self._long_pool.shutdown(wait=True)
        with self._lock:
            for conn in self._connections:
                with contextlib.suppress(Exception):
                    conn.close()
            self._connections.clear()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _settle(future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if future.cancelled():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)

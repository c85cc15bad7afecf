"""kill -9 of a real `kairand` between receipt and processing: after a restart every accepted
event is processed exactly once and none is lost."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest

from kairand.config import Config
from kairand.keys import secrets as keys
from kairand.store import inbox, metrics, residents
from kairand.store.database import open_connection
from tests.support.line_fakes import (
    LineStandIn,
    channel_secret,
    envelope,
    event,
    post_signed,
    setup_dev,
    user_id,
)
from tests.support.ports import free_port

T = TypeVar("T")

USERS = 120
PER_BODY = 4


def _start(config_path: Path, log_path: Path) -> subprocess.Popen[bytes]:
    log = log_path.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "kairand", "--config", str(config_path)],
        stdout=log,
        stderr=log,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


async def _post(config: Config, secret: str, events: list[dict]) -> int:
    body = envelope(config.webhook.bot_user_id, events)
    return await post_signed(config, secret, body)


async def _wait_ready(config: Config, secret: str, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        assert proc.poll() is None, "kairand exited at start-up"
        try:
            if await _post(config, secret, []) == 200:
                return
        except (aiohttp.ClientError, OSError):
            pass
        await asyncio.sleep(0.05)
    raise TimeoutError("kairand did not start")


def _write(config: Config, fn: Callable[..., T], *args: Any) -> T:
    conn = open_connection(config.database_path, keys.db_key())
    try:
        with conn:
            return fn(conn, *args)
    finally:
        conn.close()


def _take_survey(conn: Any) -> list[tuple[Any, ...]]:
    """Remove the survey: the inbox worker then cannot process (it retries every second) and
    acknowledged events stay pending — the window the kill must hit, held deterministically
    (replies no longer hold the worker: it never waits for them)."""
    rows = conn.execute("SELECT * FROM survey_versions").fetchall()
    conn.execute("DELETE FROM survey_versions")
    return list(rows)


def _put_survey(conn: Any, rows: list[tuple[Any, ...]]) -> None:
    conn.executemany("INSERT INTO survey_versions VALUES (?, ?, ?, ?)", rows)


def _read(config: Config, fn: Callable[..., T], *args: Any) -> T:
    conn = open_connection(config.database_path, keys.db_key(), readonly=True)
    try:
        return fn(conn, *args)
    finally:
        conn.close()


@pytest.mark.allow_blocking  # the daemon under test is another process; the test reads its store
async def test_kill_9_between_receipt_and_processing(short_tmp: Path) -> None:
    """N1: events acknowledged with 200 survive a kill -9 before processing; after restart each
    is processed exactly once (one resident and one follow count per user, none twice), no
    reply token is used twice, and no user id appears in the daemon's log."""
    port = free_port()
    line = LineStandIn()
    await line.start(port)
    config_path, config = setup_dev(short_tmp / "dev", port)
    secret = channel_secret(config)
    log_path = short_tmp / "kairand.log"
    users = [user_id() for _ in range(USERS)]
    proc = _start(config_path, log_path)
    try:
        await _wait_ready(config, secret, proc)
        survey = _write(config, _take_survey)  # the running daemon can no longer process
        base = int(time.time() * 1000)
        follows = [event("follow", u, base + i) for i, u in enumerate(users)]
        for i in range(0, USERS, PER_BODY):
            assert await _post(config, secret, follows[i : i + PER_BODY]) == 200
        pending_at_kill = _read(config, inbox.count_pending)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert pending_at_kill == USERS  # the kill really came between receipt and processing

        _write(config, _put_survey, survey)
        proc = _start(config_path, log_path)
        await _wait_ready(config, secret, proc)
        for _ in range(400):
            if _read(config, inbox.count_pending) == 0:
                break
            await asyncio.sleep(0.05)
        assert _read(config, inbox.counts) == {"done": USERS}
        assert _read(config, residents.count) == USERS
        today = metrics.day_of(time.time())
        assert _read(config, metrics.series, "follow", today, today) == {today: USERS}
        for _ in range(200):  # replies go out after the commit
            replied = [f["replyToken"] for f in follows if f["replyToken"] in line.replies]
            if len(replied) >= pending_at_kill:
                break
            await asyncio.sleep(0.05)
        assert len(replied) >= pending_at_kill  # everything processed after the restart replied
        assert line.duplicate_replies == 0
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)
        await line.stop()
    assert proc.returncode == 0  # graceful stop on SIGTERM
    log_text = log_path.read_text(encoding="utf-8")
    assert "daemon.ready" in log_text
    assert not any(u in log_text for u in users)

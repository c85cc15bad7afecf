"""The staff API inside the real daemon (N5, S8): `kairand` serves it on config.api.socket with
the configured mode, identifies the caller by SO_PEERCRED (root is on the development roster),
keeps an open event stream from delaying shutdown, removes the socket, and leaves an audit log
whose tail is signed, so `kairanctl audit verify` passes."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import sys
import time
from pathlib import Path

from kairand import ctl
from kairand.api.client import connect
from kairand.config import load_config
from kairand.errors import ExitCode
from kairand.store import audit as audit_store
from kairand.store.bootstrap import open_store, select_keyring


async def wait_for(path: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not await asyncio.to_thread(path.exists):
        assert time.monotonic() < deadline, f"{path} did not appear"
        await asyncio.sleep(0.05)


async def test_daemon_serves_the_api_and_signs_the_log_on_stop(dev_setup: Path) -> None:
    """N5, S8: /v1/me over the real socket as root; SIGTERM with an event stream open still
    stops promptly; afterwards the socket is gone and audit verify passes with a checkpoint
    covering the last entry."""
    config = await asyncio.to_thread(load_config, dev_setup)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "kairand",
        "--config",
        str(dev_setup),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await wait_for(config.api.socket, 30)
        # The daemon sets the mode right after binding: wait for it rather than racing it.
        deadline = time.monotonic() + 10
        while True:
            mode = stat.S_IMODE((await asyncio.to_thread(config.api.socket.stat)).st_mode)
            if mode == config.api.socket_mode or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert mode == config.api.socket_mode == 0o660
        async with connect(config.api.socket) as api:
            me = await api.get("/v1/me")
            assert me.status == 200 and me.body["username"] == "root"
            assert me.body["training_mode"] is True
            async with api.session.get("http://kairan/v1/events") as stream:
                assert stream.status == 200
                await stream.content.readline()
                started = time.monotonic()
                proc.send_signal(signal.SIGTERM)
                _, stderr = await asyncio.wait_for(proc.communicate(), 30)
                assert time.monotonic() - started < 10
        assert proc.returncode == ExitCode.OK, stderr.decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert not await asyncio.to_thread(config.api.socket.exists)

    def check() -> tuple[int, int]:
        select_keyring(config)
        with open_store(config) as store:
            head = store.read_sync(audit_store.head)[0]
            last = store.read_sync(audit_store.last_checkpoint)
        return head, last.seq if last else 0

    head, signed = await asyncio.to_thread(check)
    assert head >= 2 and signed == head
    code = await asyncio.to_thread(ctl.main, ["--config", str(dev_setup), "audit", "verify"])
    assert code == ExitCode.OK

"""The daemon's lifecycle as systemd sees it: READY=1, watchdog pings, clean SIGTERM exit."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kairand.errors import ExitCode


def _receive_until(sock: socket.socket, wanted: str, deadline: float) -> list[str]:
    seen: list[str] = []
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            seen.append(sock.recv(4096).decode())
        except TimeoutError:
            break
        if any(wanted in message for message in seen):
            return seen
    raise AssertionError(f"{wanted!r} not received; got {seen}")


@pytest.mark.allow_blocking
def test_ready_watchdog_and_sigterm(dev_setup: Path, short_tmp: Path) -> None:
    """S9: kairand reports READY=1 to the notify socket, pings the watchdog, and exits 0 on
    SIGTERM after STOPPING=1 — with no environment variables but systemd's own."""
    notify_path = short_tmp / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify_path))
    env = {
        "PATH": "/usr/bin:/bin",
        "NOTIFY_SOCKET": str(notify_path),
        "WATCHDOG_USEC": "200000",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "kairand", "--config", str(dev_setup)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _receive_until(sock, "READY=1", time.monotonic() + 30)
        pings = _receive_until(sock, "WATCHDOG=1", time.monotonic() + 5)
        assert any("WATCHDOG=1" in m for m in pings)
        proc.send_signal(signal.SIGTERM)
        _receive_until(sock, "STOPPING=1", time.monotonic() + 10)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()
    assert proc.returncode == ExitCode.OK, stderr
    assert "event=daemon.ready" in stderr
    assert "event=daemon.stopped" in stderr


@pytest.mark.allow_blocking
def test_missing_config_exit_code(short_tmp: Path) -> None:
    """A missing config file is the config failure class (78) with a hint."""
    result = subprocess.run(
        [sys.executable, "-m", "kairand", "--config", str(short_tmp / "none.toml")],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ["PATH"]},
    )
    assert result.returncode == int(ExitCode.CONFIG) == 78
    assert "hint:" in result.stderr

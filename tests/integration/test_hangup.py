"""Closing the terminal ends everything: a real pty, whose master side is
closed as when a tmux window is closed or an ssh session drops."""

from __future__ import annotations

import contextlib
import os
import pty
import select
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, or None once it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[1])


def alive(pid: int) -> bool:
    found = _stat(pid)
    return found is not None and found[0] not in ("Z", "X")


def descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            found = _stat(int(entry.name))
            if found is not None:
                children.setdefault(found[1], []).append(int(entry.name))
    seen: set[int] = set()
    todo = [root]
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


class Terminal:
    """A program on the slave side of a new pty; this side reads what it draws."""

    def __init__(self, argv: list[str], *, sighup_ignored: bool = False) -> None:
        self.pid, self.master = pty.fork()
        if self.pid == 0:  # pragma: no cover - the child
            os.environ["TERM"] = "xterm-256color"
            if sighup_ignored:
                # As under nohup, or for a program outside the terminal's foreground group
                # (the kernel's SIGHUP never reaches it): only end-of-file tells it.
                signal.signal(signal.SIGHUP, signal.SIG_IGN)
            os.execv(argv[0], argv)  # noqa: S606 - the program under test, no shell
        self.output = b""
        self.status: int | None = None

    def read_until(self, condition: Callable[[], bool], limit: float) -> None:
        deadline = time.monotonic() + limit
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; the terminal shows: {self.output[-2000:]!r}")
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                with contextlib.suppress(OSError):
                    self.output += os.read(self.master, 65536)

    def close(self) -> None:
        os.close(self.master)

    def reap(self) -> bool:
        if self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = status
        return self.status is not None


def wait_for(condition: Callable[[], bool], limit: float) -> bool:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def kill_all(pids: set[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


SIGHUP_CASES = pytest.mark.parametrize(
    "sighup_ignored", [False, True], ids=["sighup", "sighup-ignored"]
)


@pytest.mark.req("N5")
@pytest.mark.allow_blocking
@SIGHUP_CASES
def test_closing_the_terminal_ends_the_staff_terminal(short_tmp: Path, sighup_ignored) -> None:
    """N5: a dropped ssh session (the pty hung up) ends the TUI at once, whether SIGHUP reaches
    it or only end-of-file on the terminal does (before the fix it then stayed alive at ~76 %
    CPU, reading end-of-file in a loop)."""
    term = Terminal(
        [sys.executable, "-m", "kairan_tui.main", "--socket", str(short_tmp / "none.sock")],
        sighup_ignored=sighup_ignored,
    )
    try:
        # The connecting screen (the daemon is not there): the app is up and drawing.
        term.read_until(lambda: "接続".encode() in term.output, 60)
        started = time.monotonic()
        term.close()
        assert wait_for(term.reap, 10), "the TUI kept running after its terminal was closed"
        assert time.monotonic() - started < 5
        assert term.status is not None
        assert os.WIFEXITED(term.status) or os.WIFSIGNALED(term.status)
    finally:
        if not term.reap():
            kill_all({term.pid})
            os.waitpid(term.pid, 0)


@pytest.mark.req("N5")
@pytest.mark.slow
@pytest.mark.allow_blocking
@SIGHUP_CASES
def test_closing_the_terminal_stops_the_whole_demo(short_tmp: Path, sighup_ignored) -> None:
    """N5, S5: `make demo` runs a supervisor, the daemon, the simulator and the TUI; closing
    its terminal stops every one of them (no orphan left running), also when the kernel's
    SIGHUP reaches none of them."""
    term = Terminal(
        [
            sys.executable, "-m", "kairand.demo",
            "--dir", str(short_tmp / "demo"), "--population", "40",
        ],
        sighup_ignored=sighup_ignored,
    )  # fmt: skip
    seen: set[int] = set()
    try:

        def tui_running() -> bool:
            seen.update(descendants(term.pid))
            return any("kairan_tui.main" in cmdline(pid) for pid in seen)

        term.read_until(tui_running, 120)
        # The TUI has drawn its first screen.
        term.read_until(lambda: b"Kairan" in term.output, 60)
        seen.update(descendants(term.pid))
        names = " | ".join(cmdline(pid) for pid in seen)
        assert "kairand" in names and "simulator" in names and "kairan_tui" in names, names
        term.close()
        assert wait_for(term.reap, 30), "the demo supervisor kept running"
        left = lambda: {pid for pid in seen if alive(pid)}  # noqa: E731
        assert wait_for(lambda: not left(), 30), [cmdline(pid) for pid in left()]
    finally:
        kill_all({pid for pid in seen if alive(pid)})
        if not term.reap():
            kill_all({term.pid})
            os.waitpid(term.pid, 0)

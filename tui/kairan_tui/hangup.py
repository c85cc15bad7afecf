"""End the terminal at once when its terminal goes away (an ssh session drops, a window closes).

Staff reach the TUI over ssh with `ForceCommand kairan`: when the connection drops the kernel
hangs the terminal up. Two things tell us: SIGHUP, and the terminal itself (poll() reports
POLLHUP, reads return end-of-file). Textual's input thread does not stop on end-of-file (it
spins on a terminal that stays readable at EOF, ~76 % CPU), so we watch for both and exit.

The app is asked to exit normally; if it cannot within HARD_EXIT_SECONDS (writing to a hung-up
terminal fails), the process ends with exit status 129 (128 + SIGHUP) regardless: nothing may
keep running after the person who used it has gone.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType

HARD_EXIT_SECONDS = 3.0
HANGUP_STATUS = 128 + signal.SIGHUP


class HangupWatch:
    """A thread that waits, without polling, for SIGHUP or a hung-up terminal."""

    def __init__(
        self,
        request_exit: Callable[[], None],
        *,
        fd: int | None = None,
        hard_exit: Callable[[int], object] = os._exit,
    ) -> None:
        self.request_exit = request_exit
        self.fd = sys.stdin.fileno() if fd is None else fd
        self.hard_exit = hard_exit
        self._wake_read, self._wake_write = os.pipe()
        self._thread = threading.Thread(target=self._run, name="kairan-hangup", daemon=True)
        self._stopped = False
        self.hung_up = threading.Event()

    def start(self) -> HangupWatch:
        with contextlib.suppress(ValueError):  # not the main thread: the terminal watch only
            signal.signal(signal.SIGHUP, self._on_signal)
            signal.signal(signal.SIGTERM, self._on_signal)
        self._thread.start()
        return self

    def stop(self) -> None:
        """The app ended by itself: let the thread go."""
        self._stopped = True
        with contextlib.suppress(OSError):
            os.write(self._wake_write, b"s")

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Only async-signal-safe work here: wake the thread.
        with contextlib.suppress(OSError):
            os.write(self._wake_write, b"h")

    def _run(self) -> None:
        poller = select.poll()
        # Event mask 0: poll() still reports POLLHUP / POLLERR / POLLNVAL for the terminal.
        poller.register(self.fd, 0)
        poller.register(self._wake_read, select.POLLIN)
        while True:
            for fd, mask in poller.poll():
                if fd == self._wake_read:
                    if os.read(self._wake_read, 64).endswith(b"s") or self._stopped:
                        return
                    self._hangup()
                    return
                if mask & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
                    self._hangup()
                    return

    def _hangup(self) -> None:
        self.hung_up.set()
        if self._stopped:
            return
        # Give the app a moment to end cleanly; then end regardless (a daemon timer: a clean
        # exit does not wait for it).
        timer = threading.Timer(HARD_EXIT_SECONDS, self.hard_exit, args=(HANGUP_STATUS,))
        timer.daemon = True
        timer.start()
        with contextlib.suppress(Exception):
            self.request_exit()

"""The schedule clock of training mode: real time plus an offset that only grows.

On an appliance the series worker and the delivery sender read real time. In training mode with
`recurring.training_fast_forward_seconds` set, both read one ScheduleClock instead, and the
series worker moves it forward to the next occurrence of an active series when nothing is left
to send (kairand.delivery.series.SeriesWorker). The recurrence rules, the worker, the sender and
the exactly-once bookkeeping are the real ones; only "now" jumps, as on a simulated clock.
Between jumps the clock advances with real time, so durations (retry keys, timeouts) keep
their real length.

The offset is kept in the store's settings, so a restarted training daemon does not go back in
time (its series' cursors would otherwise wait a real week).
"""

from __future__ import annotations

import time

from kairand.store import settings
from kairand.store.database import Connection

OFFSET_SETTING = "training.schedule_clock_offset"


class ScheduleClock:
    """Callable like time.time: seconds since the epoch, `offset` seconds ahead of real time."""

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = max(0.0, offset)

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance_to(self, at: float) -> bool:
        """Jump forward so that now is AT (never backwards); True when it moved."""
        ahead = at - time.time()
        if ahead <= self.offset:
            return False
        self.offset = ahead
        return True


def load_offset(conn: Connection) -> float:
    return float(settings.get(conn, OFFSET_SETTING, 0.0) or 0.0)


def save_offset(conn: Connection, offset: float) -> None:
    settings.put(conn, OFFSET_SETTING, offset)

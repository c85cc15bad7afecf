"""Placeholder: no schema change.

Version 3 was reserved for a branch that was renumbered when it merged, so the store skipped
from 2 to 4. Migrations must form one contiguous sequence (see `migrate`), so the number is
kept as a no-op: fresh stores record it in order, and stores in the field (which have 4 and
later already) record it the next time they start — harmless, because it changes nothing.
"""

from __future__ import annotations

from kairand.store.database import Connection

VERSION = 3
DESCRIPTION = "placeholder (no change): keeps the sequence contiguous"
PLACEHOLDER = True


def upgrade(conn: Connection) -> None:
    del conn  # nothing to do: see the module docstring

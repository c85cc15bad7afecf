"""Placeholder: no schema change.

Version 17 belongs to another branch of session 3; this branch (h20-msg) uses 18 and keeps
the sequence contiguous with this no-op. At merge, drop this file if 17 has landed (or renumber).
"""

from __future__ import annotations

from kairand.store.database import Connection

VERSION = 17
DESCRIPTION = "placeholder (no change): keeps the sequence contiguous"
PLACEHOLDER = True


def upgrade(conn: Connection) -> None:
    del conn  # nothing to do: see the module docstring

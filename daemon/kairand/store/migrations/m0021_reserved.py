"""Placeholder: no schema change.

Reserved for the branches of session 3 that merge before the audience-index program facets
(m0022): migrations must form one contiguous sequence (see `migrate`). The lead replaces or
renumbers these at merge.
"""

from __future__ import annotations

from kairand.store.database import Connection

VERSION = 21
DESCRIPTION = "placeholder (no change): keeps the sequence contiguous"
PLACEHOLDER = True


def upgrade(conn: Connection) -> None:
    del conn  # nothing to do: see the module docstring

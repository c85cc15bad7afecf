"""Fixtures for API tests: a real store, the API on a real unix socket, staff of every role.

The peer resolver is injected: it reads the caller's user name from a test header (production
reads SO_PEERCRED; tests/integration/test_api_peercred.py proves that path with a real uid).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from kairand.api.app import serve
from kairand.api.client import ApiClient, connect
from kairand.api.identity import Peer
from kairand.config import Config
from kairand.store import staff
from kairand.store.database import Store

HEADER = "X-Test-User"
# One staff member per single role, plus a second author/approver for four eyes.
STAFF = {
    "adm": ("admin",),
    "aut": ("author",),
    "apr": ("approver",),
    "aud": ("auditor",),
    "aut2": ("author", "approver"),
    "apr2": ("approver",),
}


async def header_resolver(request: web.Request) -> Peer:
    name = request.headers.get(HEADER)
    return Peer(1000 if name else None, name or None)


def add_staff(store: Store, records: dict[str, tuple[str, ...]] = STAFF) -> None:
    now = int(time.time())
    for name, roles in records.items():
        store.write_sync(staff.upsert, staff.StaffRecord(name, f"職員 {name}", roles), now)


@pytest.fixture
def api_config(config: Config) -> Config:
    return config


@pytest.fixture
async def api(api_config: Config, store: Store) -> AsyncIterator[ApiClient]:
    """The API served on config.api.socket with the header resolver; yields a client."""
    add_staff(store)
    async with serve(api_config, store, None, header_resolver), connect(
        api_config.api.socket
    ) as client:
        yield client

"""Fixture for API tests: a real store and the API on a real unix socket (peer resolver
injected: tests/integration/test_api_peercred.py proves the SO_PEERCRED path with a real uid)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from api_helpers import add_staff, header_resolver
from conftest_line import FakeLine, make_app

from kairand.api.app import serve
from kairand.api.client import ApiClient, connect
from kairand.config import Config
from kairand.store.database import Store


@pytest.fixture
async def api(config: Config, store: Store) -> AsyncIterator[ApiClient]:
    """The API served on config.api.socket with the header resolver; yields a client."""
    add_staff(store)
    async with serve(config, store, None, header_resolver), connect(config.api.socket) as client:
        yield client


@pytest.fixture
async def fake_line() -> AsyncIterator[FakeLine]:
    """The quota endpoints of the Messaging API on loopback (see conftest_line)."""
    state = FakeLine()
    runner = web.AppRunner(make_app(state))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    yield state
    await runner.cleanup()

"""Fixture for API tests: a real store and the API on a real unix socket (peer resolver
injected: tests/integration/test_api_peercred.py proves the SO_PEERCRED path with a real uid)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from kairand.api.app import serve
from kairand.api.client import ApiClient, connect
from kairand.config import Config
from kairand.simulator import Simulator, SimulatorConfig
from kairand.store.database import Store
from tests.support.api_helpers import add_staff, header_resolver


@pytest.fixture
async def api(config: Config, store: Store) -> AsyncIterator[ApiClient]:
    """The API served on config.api.socket with the header resolver; yields a client."""
    add_staff(store)
    async with serve(config, store, None, header_resolver), connect(config.api.socket) as client:
        yield client


@pytest.fixture
async def line_sim() -> AsyncIterator[Simulator]:
    """The Messaging API the staff API reaches (quota, push), played by the LINE simulator:
    a limited quota of 1,000 with 120 used this month, no residents (tests add followers).
    Call it with line_api(sim.api_url, sim.config.access_token)."""
    async with Simulator(
        SimulatorConfig(seed=0, population=0, auto_react=False, quota_limit=1000)
    ) as sim:
        sim.platform.usage = 120
        yield sim

"""Injected faults over real HTTP: 5xx, hangs, and the lost response retry keys exist for."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest
from linebot.v3.messaging import (
    ApiException,
    AsyncApiClient,
    AsyncMessagingApi,
    Configuration,
    MulticastRequest,
    TextMessage,
)

from kairand.simulator import FaultProfile, ManualClock, Simulator, SimulatorConfig

TOKEN = "fault-token"


async def started(profile: FaultProfile) -> AsyncIterator[tuple[Simulator, AsyncMessagingApi]]:
    config = SimulatorConfig(
        population=20,
        seed=9,
        access_token=TOKEN,
        faults=profile,
        clock=ManualClock(),
        auto_react=False,
    )
    async with Simulator(config) as sim:
        client = AsyncApiClient(Configuration(host=sim.api_url, access_token=TOKEN))
        async with client:
            yield sim, AsyncMessagingApi(client)


@pytest.mark.parametrize("lost_mode", ["drop", "500"])
async def test_lost_response_then_retry_with_the_same_key_gets_409(lost_mode: str) -> None:
    """S5: the first attempt is delivered and its key remembered but the answer is lost; the
    retry with the same key gets 409 + the accepted request id; nobody receives it twice."""
    async for sim, api in started(FaultProfile(lost_ratio=1.0, lost_mode=lost_mode, seed=1)):
        users = [r.user_id for r in sim.follow(3)]
        key = str(uuid.uuid4())
        request = MulticastRequest(to=users, messages=[TextMessage(text="防災のお知らせ")])
        with pytest.raises((aiohttp.ClientError, ApiException)) as first:
            await api.multicast(request, x_line_retry_key=key, _request_timeout=5)
        if lost_mode == "500":
            assert isinstance(first.value, ApiException) and first.value.status == 500
        delivered = sim.ledger.find(retry_key=key)
        assert {r.user_id for r in delivered} == set(users)
        sim.platform.set_faults(FaultProfile())  # the network heals
        with pytest.raises(ApiException) as retry:
            await api.multicast(request, x_line_retry_key=key)
        assert retry.value.status == 409
        assert retry.value.headers["x-line-accepted-request-id"] == delivered[0].request_id
        assert sim.ledger.recipients(retry_key=key) == dict.fromkeys(users, 1)


async def test_5xx_and_timeouts_deliver_nothing_and_a_retry_delivers_once() -> None:
    """S5: injected 500s and hangs (past the client timeout) send nothing; the key is not
    remembered, so the retry sends exactly once."""
    profile = FaultProfile(error_ratio=0.5, timeout_ratio=0.5, hang_seconds=3.0, seed=2)
    async for sim, api in started(profile):
        uid = sim.follow(1)[0].user_id
        key = str(uuid.uuid4())
        request = MulticastRequest(to=[uid], messages=[TextMessage(text="x")])
        outcomes = []
        for _ in range(4):
            try:
                await api.multicast(request, x_line_retry_key=key, _request_timeout=0.3)
            except ApiException as exc:
                outcomes.append(exc.status)
            except (TimeoutError, aiohttp.ClientError):
                outcomes.append("timeout")
        assert 500 in outcomes and "timeout" in outcomes
        assert len(sim.ledger) == 0
        sim.platform.set_faults(FaultProfile())
        await api.multicast(request, x_line_retry_key=key)
        assert sim.ledger.recipients(retry_key=key) == {uid: 1}


async def test_seeded_faults_reproduce_over_http() -> None:
    """S5: the same seed and the same request order give the same statuses and latencies."""
    profile = FaultProfile(latency_min_ms=1, latency_max_ms=5, error_ratio=0.3, seed=77)
    runs = []
    for _ in range(2):
        async for sim, api in started(profile):
            uid = sim.follow(1)[0].user_id
            statuses = []
            for _ in range(30):
                try:
                    await api.multicast(
                        MulticastRequest(to=[uid], messages=[TextMessage(text="x")])
                    )
                    statuses.append(200)
                except ApiException as exc:
                    statuses.append(exc.status)
            runs.append((statuses, list(sim.platform.injector.history)))
    assert runs[0] == runs[1]
    assert 200 in runs[0][0] and 500 in runs[0][0]

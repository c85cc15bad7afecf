"""The LINE simulator in a process of its own, stamping what it receives, for the benchmarks
that measure the sender as LINE sees it (bench/delivery.py, bench/scale.py, bench/alert.py).

The script runs `python -c SIM_SCRIPT PORT TOKEN [FOLLOWERS]`: LINE's multicast rate limit,
50–150 ms latency per request (seeded), and FOLLOWERS synthetic followers (U%032x, ids 1..N;
0 by default). It prints "ready" once it listens and, after SIGTERM, one JSON line:

- `stamps`: (monotonic time, recipients) of every multicast the platform accepts, stamped in
  `Platform.deliver`, i.e. AFTER the simulated latency;
- `arrivals`: monotonic time of every multicast request, stamped when the simulator draws its
  latency, i.e. on arrival, BEFORE the latency: what the sender's pacing controls (pushes and
  replies draw a latency too and are not stamped);
- `requests`: the multicast requests received (accepted or not).

The simulator shares the machine's monotonic clock with the benchmark's own process.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from typing import Any

SIM_SCRIPT = r"""
import asyncio, json, signal, sys, time
from kairand.simulator import FaultProfile, Simulator, SimulatorConfig
from kairand.simulator import api as sim_api

async def main(port, token, followers):
    stamps = []
    original = sim_api.Platform.deliver
    def deliver(self, user_ids, kind, *args, **kwargs):
        if kind == "multicast":
            stamps.append((time.monotonic(), len(user_ids)))
        return original(self, user_ids, kind, *args, **kwargs)
    sim_api.Platform.deliver = deliver
    config = SimulatorConfig(
        population=0, access_token=token, port=port, auto_react=False,
        faults=FaultProfile(latency_min_ms=@LMIN@, latency_max_ms=@LMAX@, seed=@SEED@),
    )
    sim = Simulator(config)
    # Arrival of each multicast before the simulated 50-150 ms latency: what the sender's
    # pacing controls. push, multicast and reply all draw a latency (--mixed sends replies
    # too); the simulator counts a request's group just before it draws, with no await in
    # between, so a draw that follows a new multicast count is a multicast's.
    arrivals = []
    counters = sim.platform.counters
    decide = sim.platform.injector.decide
    seen = [0]
    def stamped_decide():
        multicasts = counters.get("multicast", 0)
        if multicasts != seen[0]:
            seen[0] = multicasts
            arrivals.append(time.monotonic())
        return decide()
    sim.platform.injector.decide = stamped_decide
    await sim.start()
    for i in range(1, followers + 1):
        sim.platform.add_follower({"userId": "U%032x" % i, "displayName": "保護者"})
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    await sim.stop()
    counters = dict(sim.platform.counters)
    report = {"stamps": stamps, "arrivals": arrivals, "requests": counters.get("multicast", 0)}
    print(json.dumps(report), flush=True)

asyncio.run(main(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 0))
"""


LATENCY_MS = (50, 150)
LATENCY_SEED = 1
SIM_SCRIPT = (
    SIM_SCRIPT.replace("@LMIN@", str(LATENCY_MS[0]))
    .replace("@LMAX@", str(LATENCY_MS[1]))
    .replace("@SEED@", str(LATENCY_SEED))
)


def latencies(n: int) -> list[float]:
    """The latencies (seconds) the simulator draws for its first N requests, in the order
    they arrive: the same seeded draws, made here (kairand.simulator.faults)."""
    from kairand.simulator.faults import FaultInjector, FaultProfile

    injector = FaultInjector(
        FaultProfile(latency_min_ms=LATENCY_MS[0], latency_max_ms=LATENCY_MS[1], seed=LATENCY_SEED)
    )
    return [injector.decide().latency_s for _ in range(n)]


def start(port: int, token: str, followers: int = 0) -> subprocess.Popen[str]:
    """The simulator on PORT, once it is ready."""
    sim = subprocess.Popen(
        [sys.executable, "-c", SIM_SCRIPT, str(port), token, str(followers)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert sim.stdout is not None
    assert sim.stdout.readline().strip() == "ready"
    return sim


def stop(sim: subprocess.Popen[str], timeout: float = 60) -> dict[str, Any]:
    """Stop SIM and return its report (stamps, arrivals, requests)."""
    sim.send_signal(signal.SIGTERM)
    out, _ = sim.communicate(timeout=timeout)
    report: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return report

"""LINE Platform simulator with synthetic residents — for `make demo`, staff training (訓練モード)
and integration tests. It never talks to LINE and never uses the Kairan store.

    from kairand.simulator import Simulator, SimulatorConfig, WebhookTarget

    config = SimulatorConfig(
        seed=7,
        population=1000,
        channel_secret=secret,            # what the daemon verifies signatures with
        access_token=token,               # what the daemon sends as Bearer
        webhook=WebhookTarget("https://127.0.0.1:8443/webhook/line", insecure=True),
    )
    async with Simulator(config) as sim:
        # Point line-bot-sdk at sim.api_url: Configuration(host=sim.api_url, access_token=token)
        sim.follow(100)                   # 100 follow events; residents answer the survey
        await sim.arrive(rate_per_s=5, count=50)  # or residents arriving over time
        async with asyncio.timeout(60):
            await sim.wait_idle()         # nobody about to react, no webhook in flight
        sim.ledger.recipients(text="防災")  # who received what, how often
        print(sim.status_text())          # counts only (no personal data), in Japanese

For `make demo`: `kairand.simulator.cli.dev_setup_config(path_to_kairan_toml, **overrides)`
returns a SimulatorConfig matching a `kairanctl init --dev` setup (secrets, bot user id, ports).

Parts: `api` (Messaging API server and `Platform` state), `webhook` (event factory, signed
sender with redelivery), `population` (seeded residents), `behaviour` (pure: received message +
traits -> next action), `ledger`, `faults`, `ratelimit`, `spec` (OpenAPI validation), `clock`,
`phone` (the trainee's phone for テスト送信 in training: `kairan-phone`, `make phone`).
See docs/simulator.md.
"""

from kairand.simulator.clock import ManualClock, RealClock
from kairand.simulator.faults import PROFILES, FaultProfile
from kairand.simulator.ledger import Ledger, Receipt
from kairand.simulator.population import Municipality, Population, Resident
from kairand.simulator.simulator import BANNER, Simulator, SimulatorConfig
from kairand.simulator.webhook import WebhookTarget, sign

__all__ = [
    "BANNER",
    "PROFILES",
    "FaultProfile",
    "Ledger",
    "ManualClock",
    "Municipality",
    "Population",
    "RealClock",
    "Receipt",
    "Resident",
    "Simulator",
    "SimulatorConfig",
    "WebhookTarget",
    "sign",
]

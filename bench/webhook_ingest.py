"""Webhook ingest benchmark: sustained signed events/s and ack latency against the real webhook
app (unix socket, real SQLCipher store, inbox worker running), compared with LINE's 2 s limit.

    .venv/bin/python bench/webhook_ingest.py [--quick] [--seconds N] [--concurrency N]

The server runs in its own process (`--serve`), as the daemon would; this process is the
sender, a stand-in for LINE's webhook delivery until the simulator's sender lands. The last line
is machine-readable:
    BENCH webhook_ingest events_per_s=… p50_ms=… p99_ms=… p99_vs_2s=…
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

LINE_LIMIT_MS = 2000.0


def _sign(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


async def serve(config_path: Path) -> None:
    """The server side: webhook app + inbox worker (no LINE client: replies are skipped)."""
    from kairand.config import load_config
    from kairand.keys import secrets as keys
    from kairand.line.inbox import InboxWorker, load_keys
    from kairand.line.webhook import make_webhook_app, start_sites
    from kairand.store.bootstrap import open_store, select_keyring

    config = load_config(config_path)
    select_keyring(config)
    store = open_store(config)
    store.bind_loop()
    wake = asyncio.Event()
    app = make_webhook_app(config, store, keys.get_secret(keys.CHANNEL_SECRET), wake)
    runner, _ = await start_sites(config, app)
    worker = InboxWorker(store, None, load_keys(), wake)
    task = asyncio.create_task(worker.run())
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("READY", flush=True)
    await stop.wait()
    task.cancel()
    await runner.cleanup()
    store.close()


def _body(destination: str, count: int) -> bytes:
    now = int(time.time() * 1000)
    events = []
    for _ in range(count):
        user = "U" + secrets.token_hex(16)
        events.append(
            {
                "type": "message",
                "mode": "active",
                "timestamp": now,
                "source": {"type": "user", "userId": user},
                "webhookEventId": secrets.token_hex(13).upper(),
                "deliveryContext": {"isRedelivery": False},
                "replyToken": secrets.token_hex(16),
                "message": {
                    "id": str(secrets.randbelow(10**17)),
                    "type": "text",
                    "text": "こんにちは",
                    "quoteToken": secrets.token_hex(8),
                },
            }
        )
    return json.dumps({"destination": destination, "events": events}).encode()


async def load(
    socket_path: str,
    path: str,
    secret: str,
    destination: str,
    seconds: float,
    concurrency: int,
    events_per_body: int,
) -> tuple[int, list[float]]:
    latencies: list[float] = []
    events = 0
    deadline = time.perf_counter() + seconds
    connector = aiohttp.UnixConnector(path=socket_path, limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def sender() -> None:
            nonlocal events
            while time.perf_counter() < deadline:
                body = _body(destination, events_per_body)
                headers = {"x-line-signature": _sign(secret, body)}
                started = time.perf_counter()
                async with session.post("http://localhost" + path, data=body, headers=headers) as r:
                    await r.read()
                    if r.status != 200:
                        raise RuntimeError(f"webhook answered {r.status}")
                latencies.append((time.perf_counter() - started) * 1000)
                events += events_per_body

        await asyncio.gather(*(sender() for _ in range(concurrency)))
    return events, latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run (well under a minute)")
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--concurrency", type=int, default=16, help="parallel connections")
    parser.add_argument("--events-per-body", type=int, default=1)
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve))
        return 0
    seconds = args.seconds or (8.0 if args.quick else 45.0)

    from kairand.config import load_config
    from kairand.devsetup import init_dev

    workdir = Path(tempfile.mkdtemp(prefix="kb-", dir="/tmp"))
    server = None
    try:
        config_path = init_dev(workdir / "dev", webhook_port=0)
        config = load_config(config_path)
        assert config.keyring.directory is not None and config.webhook.socket is not None
        secret = (config.keyring.directory / "line-channel-secret").read_text().strip()
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(config_path)],
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert server.stdout is not None
        if server.stdout.readline().strip() != b"READY":
            raise RuntimeError("benchmark server did not start")
        events, latencies = asyncio.run(
            load(
                str(config.webhook.socket),
                config.webhook.path,
                secret,
                config.webhook.bot_user_id,
                seconds,
                args.concurrency,
                args.events_per_body,
            )
        )
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait(30)
        shutil.rmtree(workdir, ignore_errors=True)
    latencies.sort()
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    rate = events / seconds
    print(
        f"requests={len(latencies)} events={events} seconds={seconds:.0f} "
        f"concurrency={args.concurrency} events_per_body={args.events_per_body}"
    )
    print(
        f"sustained {rate:.0f} signed events/s; ack p50 {p50:.1f} ms, p99 {p99:.1f} ms "
        f"= {p99 / LINE_LIMIT_MS:.4f} of LINE's 2 s"
    )
    print(
        f"BENCH webhook_ingest events_per_s={rate:.0f} p50_ms={p50:.1f} p99_ms={p99:.1f} "
        f"p99_vs_2s={p99 / LINE_LIMIT_MS:.4f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

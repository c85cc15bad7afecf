"""What does the staff API's per-call work cost: identity (SO_PEERCRED + passwd + roster) and
one audit-chain append (a durable SQLCipher write) on every request?

Anchor: a bare aiohttp handler on a unix socket answering the same JSON with no identity and no
audit. Also: `audit verify` speed over the chain it produced, against hashing alone.

    .venv/bin/python bench/api_requests.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
from pathlib import Path

from aiohttp import web

from kairand.api.app import serve
from kairand.api.client import connect
from kairand.audit import checkpoints
from kairand.audit.chain import verify
from kairand.config import load_config
from kairand.devsetup import init_dev
from kairand.store import audit as audit_store
from kairand.store.bootstrap import open_store, select_keyring


async def hammer(socket: Path, path: str, total: int, concurrency: int) -> float:
    """Requests per second for TOTAL GETs of PATH with CONCURRENCY clients."""
    async with connect(socket) as api:
        per = total // concurrency

        async def worker() -> None:
            for _ in range(per):
                r = await api.get(path)
                assert r.status == 200, r.body

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return per * concurrency / (time.perf_counter() - start)


async def bare(socket: Path, body: str, total: int, concurrency: int) -> float:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(text=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/v1/me", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.UnixSite(runner, str(socket)).start()
    try:
        return await hammer(socket, "/v1/me", total, concurrency)
    finally:
        await runner.cleanup()


async def main(quick: bool) -> None:
    total = 400 if quick else 4000
    tmp = Path(tempfile.mkdtemp(prefix="kb-", dir="/tmp"))
    try:
        config = load_config(init_dev(tmp / "dev"))
        select_keyring(config)
        store = open_store(config)
        try:
            async with serve(config, store):
                async with connect(config.api.socket) as api:
                    body = (await api.get("/v1/me")).body
                api_1 = await hammer(config.api.socket, "/v1/me", total, 1)
                api_8 = await hammer(config.api.socket, "/v1/me", total, 8)
            bare_1 = await bare(tmp / "bare.sock", json.dumps(body), total, 1)
            bare_8 = await bare(tmp / "bare2.sock", json.dumps(body), total, 8)
            public = checkpoints.public_key()
            start = time.perf_counter()
            result = await store.read(checkpoints.verify_store, public)
            verify_s = time.perf_counter() - start
            entries = await store.read(lambda c: list(audit_store.iter_entries(c)))
            start = time.perf_counter()
            verify(entries)
            hash_s = time.perf_counter() - start
        finally:
            store.close()
        assert result.ok
        print(f"GET /v1/me, 1 client : {api_1:8.0f} req/s (bare aiohttp {bare_1:8.0f})")
        print(f"GET /v1/me, 8 clients: {api_8:8.0f} req/s (bare aiohttp {bare_8:8.0f})")
        print(
            f"audit verify: {result.entries / verify_s:8.0f} entries/s from the store"
            f" ({len(entries) / hash_s:8.0f} hashing only)"
        )
        print(
            f"BENCH api_requests requests={total} api_rps_1={api_1:.0f} bare_rps_1={bare_1:.0f}"
            f" ratio_1={bare_1 / api_1:.1f} api_rps_8={api_8:.0f} bare_rps_8={bare_8:.0f}"
            f" ratio_8={bare_8 / api_8:.1f} verify_entries_per_s={result.entries / verify_s:.0f}"
            f" verify_vs_hash={hash_s / verify_s:.2f}"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    asyncio.run(main(parser.parse_args().quick))

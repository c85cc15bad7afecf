"""The webhook sender against a small receiver: LINE's signature (checked by line-bot-sdk's own
WebhookParser), complete events (webhook.yml), redelivery, duplicates, reordering, TLS and unix
sockets."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from linebot.v3.webhook import UnknownEvent, WebhookParser
from linebot.v3.webhooks import FollowEvent, MessageEvent, PostbackEvent, UnfollowEvent

from kairand.simulator import ManualClock, Simulator, SimulatorConfig, WebhookTarget
from kairand.simulator.spec import webhook_spec

SECRET = "0123456789abcdef0123456789abcdef"


class Receiver:
    """Records raw bodies; answers `fail_first` requests with 500 to trigger redelivery."""

    def __init__(self, fail_first: int = 0) -> None:
        self.bodies: list[tuple[bytes, str]] = []
        self.fail_first = fail_first

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append((await request.read(), request.headers.get("x-line-signature", "")))
        if len(self.bodies) <= self.fail_first:
            return web.Response(status=500)
        return web.Response(text="OK")

    def events(self) -> list[dict[str, Any]]:
        return [e for raw, _ in self.bodies for e in json.loads(raw)["events"]]


async def serve(
    receiver: Receiver, *, unix: Path | None = None, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/webhook", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site: web.BaseSite
    if unix is not None:
        site = web.UnixSite(runner, str(unix))
    else:
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port = runner.addresses[0][1] if unix is None else 0
    scheme = "https" if ssl_context else "http"
    try:
        yield f"{scheme}://127.0.0.1:{port}/webhook" if unix is None else "http://localhost/webhook"
    finally:
        await runner.cleanup()


def config(target: WebhookTarget, **kw: object) -> SimulatorConfig:
    base = dict(
        population=50,
        seed=21,
        channel_secret=SECRET,
        clock=ManualClock(),
        auto_react=False,
        webhook=target,
        redelivery_delays_s=(0.05, 0.05, 0.05),
    )
    return SimulatorConfig(**{**base, **kw})  # type: ignore[arg-type]


async def test_events_verify_with_line_bot_sdk_and_validate_against_the_spec(
    short_tmp: Path,
) -> None:
    """S5: every body verifies with WebhookParser (channel secret), parses into real event
    classes (never UnknownEvent), and validates against webhook.yml; one body may carry
    several users' events; the destination is the bot user id."""
    receiver = Receiver()
    sock = short_tmp / "hook.sock"
    async for url in serve(receiver, unix=sock):
        async with Simulator(config(WebhookTarget(url, unix_socket=str(sock)))) as sim:
            users = [r.user_id for r in sim.follow(5)]
            sim.send_text(users[0], "ごみの日はいつですか")
            sim.send_postback(users[1], "q=birth", {"date": "1980-04-01"})
            sim.send_postback(users[2], "q=area&a=1")
            sim.unfollow(users[3])
            await sim.wait_idle()
    parser = WebhookParser(SECRET)
    spec = await asyncio.to_thread(webhook_spec)  # reads the YAML file: not on the loop
    seen: list[object] = []
    for raw, signature in receiver.bodies:
        body = json.loads(raw)
        assert body["destination"] == sim.bot_user_id
        assert spec.validate("CallbackRequest", body) == []
        events = parser.parse(raw.decode(), signature)
        assert not any(isinstance(e, UnknownEvent) for e in events)
        seen += events
    kinds = [type(e) for e in seen]
    assert kinds.count(FollowEvent) == 5 and kinds.count(PostbackEvent) == 2
    assert kinds.count(MessageEvent) == 1 and kinds.count(UnfollowEvent) == 1
    assert any(
        len({e["source"]["userId"] for e in json.loads(raw)["events"]}) > 1
        for raw, _ in receiver.bodies
    )
    birth = next(e for e in seen if isinstance(e, PostbackEvent) and e.postback.params)
    assert birth.postback.params == {"date": "1980-04-01"}
    with pytest.raises(Exception, match="signature"):
        parser.parse(receiver.bodies[0][0].decode(), "AAAA" + receiver.bodies[0][1][4:])


async def test_non_2xx_is_redelivered_with_the_same_event_id(short_tmp: Path) -> None:
    """S5: a 500 answer makes the sender redeliver: same webhookEventId, timestamp and reply
    token, deliveryContext.isRedelivery true."""
    receiver = Receiver(fail_first=2)
    sock = short_tmp / "hook.sock"
    async for url in serve(receiver, unix=sock):
        async with Simulator(config(WebhookTarget(url, unix_socket=str(sock)))) as sim:
            sim.follow(1)
            await sim.wait_idle()
    events = receiver.events()
    assert len(events) == 3
    assert len({e["webhookEventId"] for e in events}) == 1
    assert len({(e["timestamp"], e["replyToken"]) for e in events}) == 1
    assert [e["deliveryContext"]["isRedelivery"] for e in events] == [False, True, True]


async def test_duplicates_and_reordering_can_be_injected(short_tmp: Path) -> None:
    """S5: with duplicate and reorder ratios, the same event id arrives twice and events arrive
    out of timestamp order — the daemon must dedupe and order (seeded: reproducible)."""
    runs: list[list[dict[str, Any]]] = []
    for _ in range(2):
        receiver = Receiver()
        sock = short_tmp / f"hook{len(runs)}.sock"
        clock = ManualClock()
        async for url in serve(receiver, unix=sock):
            cfg = config(
                WebhookTarget(url, unix_socket=str(sock)),
                clock=clock,
                duplicate_ratio=0.3,
                reorder_ratio=1.0,
                webhook_concurrency=1,
                max_events_per_body=50,
            )
            async with Simulator(cfg) as sim:
                for resident in sim.population.residents[:40]:
                    sim.follow(residents=[resident])
                    clock.advance(0.01)
                await sim.wait_idle()
        runs.append(receiver.events())
    events = runs[0]
    ids = [e["webhookEventId"] for e in events]
    assert len(ids) > len(set(ids)) == 40
    stamps = [e["timestamp"] for e in events]
    assert stamps != sorted(stamps)
    assert [e["webhookEventId"] for e in runs[1]] == ids


def self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.mark.parametrize("mode", ["ca", "insecure"])
async def test_tls_with_a_ca_file_or_the_insecure_flag(short_tmp: Path, mode: str) -> None:
    """S5: the daemon's self-signed dev certificate is accepted via its CA file or --insecure;
    without either, delivery fails (and is retried) instead of silently skipping TLS checks."""
    cert, key = self_signed(short_tmp)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    for trusted in (True, False):
        receiver = Receiver()
        async for url in serve(receiver, ssl_context=server_ctx):
            if trusted:
                target = WebhookTarget(
                    url, ca_file=str(cert) if mode == "ca" else None, insecure=mode == "insecure"
                )
            else:
                target = WebhookTarget(url)
            async with Simulator(config(target, redelivery=False)) as sim:
                sim.follow(2)
                await sim.wait_idle()
                assert sim.sender is not None
                failures = sim.sender.stats.failures
        assert (len(receiver.events()) == 2) is trusted
        assert (failures == 0) is trusted

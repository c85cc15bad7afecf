"""The webhook endpoint against a real aiohttp server (unix socket, TLS, loopback TCP) and a real
SQLCipher store: signature first, destination, size, malformed bodies, dedupe."""

from __future__ import annotations

import asyncio
import datetime as dt
import http.client
import json
import logging
import socket
import ssl
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kairand.config import Config
from kairand.line.webhook import make_webhook_app, start_sites
from kairand.store import inbox, metrics
from kairand.store import settings as settings_store
from kairand.store.bootstrap import open_store
from kairand.store.database import Connection, Store
from tests.support.line_fakes import (
    channel_secret,
    envelope,
    event,
    setup_dev,
    sign,
    user_id,
)
from tests.support.ports import free_port


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, context: ssl.SSLContext | None = None) -> None:
        super().__init__("localhost", timeout=10)
        self.unix_path = path
        self.context = context

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(10)
        sock.connect(self.unix_path)
        self.sock = (
            self.context.wrap_socket(sock, server_hostname="localhost") if self.context else sock
        )


class WebhookServer:
    """The real webhook app served from its own thread and loop (tests stay synchronous)."""

    def __init__(self, config: Config, store: Store, secret: str) -> None:
        self.config = config
        self.store = store
        self.secret = secret
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            app = make_webhook_app(self.config, self.store, self.secret)
            runner, _ = self.loop.run_until_complete(start_sites(self.config, app))
        except BaseException as exc:
            self.error = exc
            self.ready.set()
            return
        self.ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(runner.cleanup())
        self.loop.close()

    def __enter__(self) -> WebhookServer:
        self.thread.start()
        self.ready.wait(10)
        if self.error:
            raise self.error
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def post(
        self, body: bytes, headers: dict[str, str] | None = None, *, signed: bool = True
    ) -> tuple[int, bytes]:
        assert self.config.webhook.socket is not None
        conn = UnixHTTPConnection(str(self.config.webhook.socket))
        all_headers = {"Content-Type": "application/json"}
        if signed:
            all_headers["x-line-signature"] = sign(self.secret, body)
        all_headers.update(headers or {})
        conn.request("POST", self.config.webhook.path, body=body, headers=all_headers)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        return response.status, data


def _count(conn: Connection) -> int:
    return sum(inbox.counts(conn).values())


@pytest.fixture
def setup(short_tmp: Path) -> Iterator[tuple[Config, Store, str]]:
    _, config = setup_dev(short_tmp / "dev", free_port())
    store = open_store(config)
    yield config, store, channel_secret(config)
    store.close()


@pytest.fixture
def server(setup: tuple[Config, Store, str]) -> Iterator[WebhookServer]:
    config, store, secret = setup
    with WebhookServer(config, store, secret) as srv:
        yield srv


def test_valid_events_are_stored_once_and_answered_200(server: WebhookServer) -> None:
    """N1: a signed body is stored in one transaction; a redelivered/duplicate
    webhookEventId is stored once; last_seen_at and the webhook_event metric are recorded."""
    user = user_id()
    events = [event("follow", user, 1000), event("message", user, 1001, text="こんにちは")]
    body = envelope(server.config.webhook.bot_user_id, events)
    assert server.post(body)[0] == 200
    redelivered = [dict(events[0], deliveryContext={"isRedelivery": True}), events[1]]
    assert server.post(envelope(server.config.webhook.bot_user_id, redelivered))[0] == 200
    assert server.store.read_sync(_count) == 2
    assert server.store.read_sync(settings_store.get, "webhook.last_seen_at") is not None
    today = metrics.day_of(__import__("time").time())
    counted = server.store.read_sync(metrics.series, "webhook_event", today, today)
    assert counted == {today: 2}


def test_connection_check_with_no_events_is_200(server: WebhookServer) -> None:
    """LINE's "verify" button sends an empty events list: 200, nothing stored."""
    assert server.post(envelope(server.config.webhook.bot_user_id, []))[0] == 200
    assert server.store.read_sync(_count) == 0


def test_signature_header_is_case_insensitive(server: WebhookServer) -> None:
    """x-line-signature is read case-insensitively."""
    body = envelope(server.config.webhook.bot_user_id, [event("follow", user_id(), 1)])
    status, _ = server.post(body, {"X-LINE-SIGNATURE": sign(server.secret, body)}, signed=False)
    assert status == 200 and server.store.read_sync(_count) == 1


def test_invalid_or_missing_signature_is_400_counted_and_pii_free(
    server: WebhookServer, caplog: pytest.LogCaptureFixture
) -> None:
    """N1, privacy: a forged or unsigned body is refused before parsing, stored nowhere, and
    the log line carries a count but no user id."""
    user = user_id()
    body = envelope(server.config.webhook.bot_user_id, [event("follow", user, 1)])
    caplog.set_level(logging.INFO)
    assert (
        server.post(body, {"x-line-signature": sign("wrong-secret", body)}, signed=False)[0] == 400
    )
    assert server.post(body, signed=False)[0] == 400
    tampered = body.replace(b"follow", b"unfollow")
    assert (
        server.post(tampered, {"x-line-signature": sign(server.secret, body)}, signed=False)[0]
        == 400
    )
    assert server.store.read_sync(_count) == 0
    lines = [r for r in caplog.records if r.getMessage() == "webhook.invalid_signature"]
    assert [r.fields["count"] for r in lines] == [1, 2, 3]  # type: ignore[attr-defined]
    assert all(user not in repr(r.__dict__) for r in caplog.records)


@pytest.mark.req("N4")
def test_events_with_a_user_id_that_is_not_a_line_id_are_dropped_and_counted(
    server: WebhookServer, caplog: pytest.LogCaptureFixture
) -> None:
    """N4: a signed event whose userId is not a LINE id (U + 32 lowercase hex) is dropped and
    counted — it would create a resident whose id makes LINE refuse a whole multicast batch —
    while the valid events of the same body are stored; the answer is 200 and no id is
    logged."""
    good = user_id()
    bad_ids = ["hello-world", "U" + "x" * 5000, "U" + "0" * 31 + "\x00", "U" + "A" * 32, "U1"]
    events = [event("follow", good, 1)] + [
        event("follow", bad, 2 + i) for i, bad in enumerate(bad_ids)
    ]
    numeric = event("follow", good, 99)
    numeric["source"]["userId"] = 12345
    caplog.set_level(logging.INFO)
    status, _ = server.post(envelope(server.config.webhook.bot_user_id, [*events, numeric]))
    assert status == 200
    stored = server.store.read_sync(
        lambda c: c.execute("SELECT line_user_id FROM inbox").fetchall()
    )
    assert stored == [(good,)]
    today = metrics.day_of(__import__("time").time())
    dropped = server.store.read_sync(metrics.series, "webhook_invalid_user_id", today, today)
    assert dropped == {today: len(bad_ids) + 1}
    logged = [r for r in caplog.records if r.getMessage() == "webhook.invalid_user_id"]
    assert logged and all(
        bad not in repr(r.__dict__) for r in caplog.records for bad in ["hello-world", good]
    )


def test_wrong_destination_is_refused(server: WebhookServer) -> None:
    """N1: a correctly signed body for another bot is not stored."""
    body = envelope("U" + "0" * 32, [event("follow", user_id(), 1)])
    assert server.post(body)[0] == 400
    assert server.store.read_sync(_count) == 0


def test_body_over_the_limit_is_413(server: WebhookServer) -> None:
    """N1: the size limit applies before reading/parsing."""
    big = [event("message", user_id(), i, text="あ" * 5000) for i in range(200)]
    body = envelope(server.config.webhook.bot_user_id, big)
    assert len(body) > server.config.webhook.max_body_bytes
    assert server.post(body)[0] == 413
    assert server.store.read_sync(_count) == 0


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'{"destination": 5, "events": []}',
        b'{"events": {}}',
        b'{"events": [1]}',
        b'{"events": [{"type": "follow", "timestamp": 1}]}',
        b'{"events": [{"type": "follow", "webhookEventId": "x", "timestamp": "1"}]}',
        b"\xff\xfe\x00",
    ],
)
def test_malformed_signed_bodies_are_400(server: WebhookServer, body: bytes) -> None:
    """N1: malformed JSON (even correctly signed) → 400, nothing stored."""
    assert server.post(body)[0] == 400
    assert server.store.read_sync(_count) == 0


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.one_of(
        st.binary(max_size=300),
        JSONISH.map(lambda v: json.dumps(v).encode()),
        st.builds(
            lambda evs: json.dumps({"destination": "", "events": evs}).encode(),
            st.lists(
                st.dictionaries(st.sampled_from(["type", "timestamp", "source", "x"]), JSONISH)
            ),
        ),
    ),
    signed=st.booleans(),
)
def test_fuzzed_bodies_never_5xx_and_never_stored(
    server: WebhookServer, body: bytes, signed: bool
) -> None:
    """N1: arbitrary bodies, signed or not, never cause a 5xx and never reach the inbox."""
    status, _ = server.post(body, signed=signed)
    assert status < 500
    assert status == 400
    assert server.store.read_sync(_count) == 0


def _nest(depth: int, kind: str, leaf: str = "1") -> str:
    opener, closer = ("[", "]") if kind == "list" else ('{"a":', "}")
    return opener * depth + leaf + closer * depth


def _hostile_event(value_json: str, where: str) -> bytes:
    """A complete, validly shaped follow event with VALUE_JSON placed at WHERE."""
    base = event("follow", "U" + "0" * 32, 1000, event_id="01HOSTILE0000000000000000")
    text = json.dumps({"destination": "", "events": [base]})
    if where == "envelope":
        return text[:-1].encode() + b',"extra":' + value_json.encode() + b"}"
    if where == "event":
        return text.replace(
            '"type": "follow"', '"extra": ' + value_json + ', "type": "follow"'
        ).encode()
    if where == "source":
        return text.replace('"type": "user"', '"type": "user", "x": ' + value_json).encode()
    return value_json.encode()  # the whole body


HOSTILE_VALUES = st.one_of(
    # Depth: far beyond anything LINE sends, up to what fits in the body limit.
    st.builds(_nest, st.integers(33, 200_000), st.sampled_from(["list", "dict"])),
    # Types LINE never sends.
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999999", "9" * 5000, '"\\ud800"']),
    st.sampled_from(['"\\udfff x"', '{"\\ud800": 1}', '"\\u0000"', "-0", "1.5e308"]),
    # Size: long strings and many members (still under the body limit).
    st.integers(1, 900_000).map(lambda n: json.dumps("あ" * (n // 3))),
    st.integers(1, 60_000).map(lambda n: "[" + ",".join(["{}"] * n) + "]"),
)


@pytest.mark.req("N1")
@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    value=HOSTILE_VALUES,
    where=st.sampled_from(["body", "envelope", "event", "source"]),
)
def test_hostile_json_is_never_a_5xx(server: WebhookServer, value: str, where: str) -> None:
    """N1: validly signed hostile JSON (deep nesting, huge or odd numbers, lone surrogates, huge
    strings, many members, wherever it sits) is answered 200 / 400 / 413, never 5xx; bodies
    nested deeper than LINE ever sends, NaN/Infinity and lone surrogates are refused (400)."""
    body = _hostile_event(value, where)
    before = server.store.read_sync(_count)
    status, _ = server.post(body)
    assert status in (200, 400, 413), status
    never_from_line = value.startswith(
        ("[[", '{"a":{"a":', "NaN", "Infinity", "-Infinity", '"\\ud', '"\\udfff')
    ) or value.startswith('{"\\ud800')
    if never_from_line:
        assert status in (400, 413)  # 413 when it is also over the size limit
    if status != 200:
        assert server.store.read_sync(_count) == before


@pytest.mark.req("N1")
@pytest.mark.parametrize(
    ("body", "where"),
    [
        (_nest(100_000, "list"), "body"),
        (_nest(5_000, "dict"), "event"),
        (_nest(40, "list"), "source"),
        ("NaN", "event"),
        ('"\\ud800"', "event"),
    ],
    ids=["list-100000-body", "dict-5000-event", "list-40-source", "nan", "lone-surrogate"],
)
def test_deep_or_impossible_json_is_400(server: WebhookServer, body: str, where: str) -> None:
    """N1: a validly signed body nested far deeper than LINE sends (which crashed json with a
    RecursionError: HTTP 500), NaN, or a lone surrogate, is a 400 and nothing is stored."""
    status, _ = server.post(_hostile_event(body, where))
    assert status == 400
    assert server.store.read_sync(_count) == 0


@pytest.mark.req("N1")
def test_not_utf8_but_valid_json_in_another_encoding_is_400(server: WebhookServer) -> None:
    """LINE sends UTF-8; the same envelope in UTF-16 (which json.loads would guess) is a 400."""
    body = envelope(server.config.webhook.bot_user_id, [event("follow", user_id(), 1)])
    assert server.post(body.decode().encode("utf-16"))[0] == 400
    assert server.store.read_sync(_count) == 0


def test_unknown_event_types_are_stored(server: WebhookServer) -> None:
    """LINE adds event types without notice: stored (the worker ignores them), 200."""
    unknown = event("follow", user_id(), 5)
    unknown["type"] = "membership"
    unknown["membership"] = {"type": "joined"}
    assert server.post(envelope(server.config.webhook.bot_user_id, [unknown]))[0] == 200
    assert server.store.read_sync(_count) == 1


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_tls_on_the_unix_socket(setup: tuple[Config, Store, str], short_tmp: Path) -> None:
    """DESIGN: TLS terminates on the appliance: the unix socket speaks TLS when a certificate is
    configured, and the socket gets the configured mode."""
    config, store, secret = setup
    cert, key = _self_signed(short_tmp)
    webhook = config.webhook.model_copy(
        update={"tls_cert": cert, "tls_key": key, "socket_mode": 0o600}
    )
    tls_config = config.model_copy(update={"webhook": webhook})
    with WebhookServer(tls_config, store, secret) as srv:
        assert webhook.socket is not None
        assert stat.S_IMODE(webhook.socket.stat().st_mode) == 0o600
        body = envelope(config.webhook.bot_user_id, [event("follow", user_id(), 1)])
        client = ssl.create_default_context(cafile=str(cert))
        conn = UnixHTTPConnection(str(webhook.socket), client)
        conn.request(
            "POST", config.webhook.path, body=body, headers={"x-line-signature": sign(secret, body)}
        )
        assert conn.getresponse().status == 200
        conn.close()
        plain = UnixHTTPConnection(str(webhook.socket))
        with pytest.raises((http.client.HTTPException, OSError)):
            plain.request("POST", config.webhook.path, body=body)
            plain.getresponse()
        assert srv.store.read_sync(_count) == 1


def test_loopback_tcp_listener_for_development(server: WebhookServer) -> None:
    """Development: the same endpoint on loopback TCP when tcp_host/tcp_port are set."""
    body = envelope(server.config.webhook.bot_user_id, [event("follow", user_id(), 1)])
    conn = http.client.HTTPConnection(
        server.config.webhook.tcp_host, server.config.webhook.tcp_port
    )
    headers: dict[str, Any] = {"x-line-signature": sign(server.secret, body)}
    conn.request("POST", server.config.webhook.path, body=body, headers=headers)
    assert conn.getresponse().status == 200
    conn.close()

"""The blind relay, for real: a throwaway sshd configured like the relay (its Match block and
an authorized_keys line with restrict,port-forwarding,permitlisten=), the appliance's own tunnel
script (provisioning/kairan-tunnel, the same argv as kairan-tunnel.service), and kairand's webhook
endpoint serving TLS on its unix socket with a certificate loaded by kairand.tls.

A signed webhook POSTed to the relay's loopback port travels through the ssh reverse tunnel,
is TLS-terminated by the daemon and lands in the daemon's inbox (N7, S6, S12).
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from ulid import ULID

from kairand import tls
from kairand.config import Config, load_config
from kairand.keys import secrets
from kairand.line.webhook import make_webhook_app, signature_for, start_sites
from kairand.store import inbox
from kairand.store.bootstrap import open_store, select_keyring
from kairand.store.database import Store
from tests.support.ports import free_port

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[2]
RELAY = REPO / "provisioning" / "relay"
TUNNEL = REPO / "provisioning" / "kairan-tunnel"
HOST = "webhook.example-city.jp"
pytestmark = pytest.mark.slow


def wait_for_log(log: Path, text: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    """Wait until PROC (ours) writes TEXT to LOG: readiness of our own process, not merely
    "something listens on that port"."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise AssertionError(f"process exited with {proc.returncode}: {log.read_text()}")
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in {log} after {timeout} s")


def wait_for_tunnel(
    port: int, client_tls: ssl.SSLContext, proc: subprocess.Popen, timeout: float = 60.0
) -> None:
    """Wait until 127.0.0.1:PORT leads through OUR tunnel to OUR daemon: a TLS handshake that
    verifies the daemon's own certificate (only the daemon holds its key) succeeds. A mere
    connect would also succeed on a foreign listener holding the port (another test suite's),
    and the requests would then go elsewhere."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise AssertionError(f"the tunnel exited with {proc.returncode}: {err}")
        try:
            with (
                socket.create_connection(("127.0.0.1", port), timeout=3) as raw,
                client_tls.wrap_socket(raw, server_hostname=HOST),
            ):
                return
        except (OSError, ssl.SSLError) as exc:
            last = exc
        time.sleep(0.05)
    raise AssertionError(f"no tunnel to the daemon on 127.0.0.1:{port}: {last!r}")


@dataclass
class Relay:
    ssh_port: int
    listen_port: int
    user: str
    key: Path
    known_hosts: Path
    log: Path


def keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text().strip()


@pytest.fixture
def relay(short_tmp: Path) -> Iterator[Relay]:
    """A throwaway sshd on 127.0.0.1 configured with the relay's own Match block."""
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    folder = short_tmp / "relay"
    folder.mkdir()
    host_pub = keygen(folder / "host_key")
    appliance_pub = keygen(short_tmp / "tunnel_key")
    user = getpass.getuser()
    listen_port, ssh_port = free_port(), free_port()
    authorized = folder / "authorized_keys"
    template = (RELAY / "authorized_keys.template").read_text()
    line = next(x for x in template.splitlines() if x and not x.startswith("#"))
    authorized.write_text(
        line.replace("@LISTEN_PORT@", str(listen_port)).replace("@PUBLIC_KEY@", appliance_pub)
        + "\n"
    )
    match_block = (
        (RELAY / "sshd-kairan-relay.conf")
        .read_text()
        .replace("Match User kairan-relay", f"Match User {user}")
        .replace("/etc/ssh/kairan-relay/authorized_keys", str(authorized))
    )
    config = folder / "sshd_config"
    config.write_text(
        f"Port {ssh_port}\nListenAddress 127.0.0.1\nHostKey {folder / 'host_key'}\n"
        f"PidFile {folder / 'sshd.pid'}\nUsePAM no\n"
        # Test-only: the files live under /tmp, which StrictModes rejects as world-writable.
        "StrictModes no\nPermitRootLogin prohibit-password\nLogLevel VERBOSE\n"
        "AuthorizedKeysFile none\n" + match_block
    )
    log = folder / "sshd.log"
    proc = subprocess.Popen(
        ["/usr/sbin/sshd", "-D", "-e", "-f", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )
    try:
        wait_for_log(log, f"Server listening on 127.0.0.1 port {ssh_port}.", proc)
        known_hosts = short_tmp / "known_hosts"
        known_hosts.write_text(f"[127.0.0.1]:{ssh_port} {host_pub}\n")
        yield Relay(ssh_port, listen_port, user, short_tmp / "tunnel_key", known_hosts, log)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def tunnel_env(relay: Relay, socket_path: Path, **over: str) -> dict[str, str]:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/root"),
        "KAIRAN_RELAY_HOST": "127.0.0.1",
        "KAIRAN_RELAY_SSH_PORT": str(relay.ssh_port),
        "KAIRAN_RELAY_USER": relay.user,
        "KAIRAN_RELAY_LISTEN_PORT": str(relay.listen_port),
        "KAIRAN_WEBHOOK_SOCKET": str(socket_path),
        "KAIRAN_TUNNEL_KEY": str(relay.key),
        "KAIRAN_KNOWN_HOSTS": str(relay.known_hosts),
    }
    env.update(over)
    return env


@dataclass
class Appliance:
    config: Config
    store: Store
    client_tls: ssl.SSLContext  # trusts the webhook's self-signed certificate
    channel_secret: str


@pytest.fixture
def prepared(dev_setup: Path, short_tmp: Path) -> Iterator[Appliance]:
    """A development setup changed to appliance shape: TLS on the unix socket, no TCP."""
    cert_pem, key_pem = tls.self_signed(HOST)
    cert, key = short_tmp / "webhook.crt", short_tmp / "webhook.key"
    cert.write_bytes(cert_pem)
    key.write_bytes(key_pem)
    key.chmod(0o600)
    text = dev_setup.read_text().replace('tcp_host = "127.0.0.1"', 'tcp_host = ""')
    text = text.replace("[webhook]\n", f'[webhook]\ntls_cert = "{cert}"\ntls_key = "{key}"\n', 1)
    dev_setup.write_text(text)
    config = load_config(dev_setup)
    select_keyring(config)
    store = open_store(config)
    try:
        yield Appliance(
            config,
            store,
            ssl.create_default_context(cafile=str(cert)),
            secrets.get_secret(secrets.CHANNEL_SECRET),
        )
    finally:
        store.close()


class WebhookThread:
    """kairand's webhook app on its own loop in a thread, so the test itself stays synchronous
    (ssh and sshd are ordinary child processes)."""

    def __init__(self, appliance: Appliance) -> None:
        self.appliance = appliance
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def __enter__(self) -> WebhookThread:
        self.thread.start()
        a = self.appliance
        app = make_webhook_app(a.config, a.store, a.channel_secret)
        self.runner, where = self.run(start_sites(a.config, app))
        assert where == [f"unix:{a.config.webhook.socket}"]
        return self

    def __exit__(self, *exc: object) -> None:
        self.run(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def appliance(prepared: Appliance) -> Iterator[WebhookThread]:
    """kairand's webhook endpoint on its unix socket with TLS (kairand.tls), no TCP listener."""
    with WebhookThread(prepared) as server:
        yield server


def webhook_body(config: Config) -> bytes:
    event = {
        "type": "follow",
        "mode": "active",
        "timestamp": int(time.time() * 1000),
        "source": {"type": "user", "userId": "U" + "5" * 32},
        "webhookEventId": str(ULID()),
        "deliveryContext": {"isRedelivery": False},
        "replyToken": "0f3779fba3b349968c5d07db31eab56f",
        "follow": {"isUnblocked": False},
    }
    return json.dumps({"destination": config.webhook.bot_user_id, "events": [event]}).encode()


async def post_via_relay(port: int, ctx: ssl.SSLContext, body: bytes, signature: str) -> int:
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as session,
        session.post(
            f"https://127.0.0.1:{port}/webhook",
            data=body,
            headers={"Content-Type": "application/json", "X-Line-Signature": signature},
            server_hostname=HOST,
            timeout=aiohttp.ClientTimeout(total=45),
        ) as resp,
    ):
        return resp.status


@contextlib.contextmanager
def running_tunnel(env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """provisioning/kairan-tunnel, exactly as kairan-tunnel.service runs it."""
    proc = subprocess.Popen(
        ["bash", str(TUNNEL)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: ssh goes with it, as in its unit
    )
    try:
        yield proc
    finally:
        # systemd stops the unit's whole control group; do the same (bash defers a TERM
        # until its foreground ssh exits, which under load took longer than the wait).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        if proc.stderr:
            proc.stderr.close()


def test_signed_webhook_arrives_through_the_reverse_tunnel(
    relay: Relay, appliance: WebhookThread
) -> None:
    """N7, S6: LINE → relay port → ssh -R → unix socket → TLS in kairand → inbox. A body with a
    bad signature travels the same way and is refused by the daemon (the relay cannot forge)."""
    a = appliance.appliance
    assert a.config.webhook.socket is not None
    with running_tunnel(tunnel_env(relay, a.config.webhook.socket)) as proc:
        wait_for_tunnel(relay.listen_port, a.client_tls, proc)
        body = webhook_body(a.config)
        signature = signature_for(a.channel_secret, body)
        assert (
            appliance.run(post_via_relay(relay.listen_port, a.client_tls, body, signature)) == 200
        )
        assert a.store.read_sync(inbox.count_pending) == 1
        forged = webhook_body(a.config)
        bad = signature_for("not-the-secret", forged)
        assert appliance.run(post_via_relay(relay.listen_port, a.client_tls, forged, bad)) == 400
        assert a.store.read_sync(inbox.count_pending) == 1
        assert proc.poll() is None  # the tunnel stays up between requests
    # The relay's sshd saw the forwarding but could not read the body: the plain JSON never
    # crossed it (TLS ends in kairand), and it is not in its log either.
    assert b"webhookEventId" not in relay.log.read_bytes()


def test_taken_relay_port_is_never_mistaken_for_the_tunnel(
    relay: Relay, appliance: WebhookThread
) -> None:
    """N7: when another process already listens on the relay port, ssh exits (ExitOnForwardFailure:
    "remote port forwarding failed") and the foreign listener, which accepts connections, does
    not pass for the tunnel: only the daemon's own certificate does."""
    a = appliance.appliance
    assert a.config.webhook.socket is not None
    with socket.socket() as foreign:
        foreign.bind(("127.0.0.1", relay.listen_port))
        foreign.listen()
        with running_tunnel(tunnel_env(relay, a.config.webhook.socket)) as proc:
            with pytest.raises(AssertionError, match="remote port forwarding failed"):
                wait_for_tunnel(relay.listen_port, a.client_tls, proc)
            assert proc.returncode not in (None, 0)


def test_forbidden_listen_port_is_refused(relay: Relay, appliance: WebhookThread) -> None:
    """N7: the relay key may listen only on its permitlisten port: asking for another makes ssh
    exit at once (ExitOnForwardFailure) and nothing listens there."""
    socket_path = appliance.appliance.config.webhook.socket
    assert socket_path is not None
    other = free_port()
    env = tunnel_env(relay, socket_path, KAIRAN_RELAY_LISTEN_PORT=str(other))
    with running_tunnel(env) as proc:
        code = proc.wait(timeout=20)
        assert proc.stderr is not None
        stderr = proc.stderr.read()
    assert code != 0
    assert b"remote port forwarding failed" in stderr
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", other)) != 0


def test_unpinned_relay_host_key_is_refused(
    relay: Relay, appliance: WebhookThread, short_tmp: Path
) -> None:
    """N7: with StrictHostKeyChecking and a pinned known_hosts, a relay presenting another host
    key (an impostor) gets no connection at all."""
    socket_path = appliance.appliance.config.webhook.socket
    assert socket_path is not None
    impostor = keygen(short_tmp / "impostor")
    wrong = short_tmp / "wrong_known_hosts"
    wrong.write_text(f"[127.0.0.1]:{relay.ssh_port} {impostor}\n")
    env = tunnel_env(relay, socket_path, KAIRAN_KNOWN_HOSTS=str(wrong))
    with running_tunnel(env) as proc:
        code = proc.wait(timeout=20)
        assert proc.stderr is not None
        stderr = proc.stderr.read()
    assert code == 255
    assert b"Host key verification failed" in stderr or b"HOST IDENTIFICATION" in stderr
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", relay.listen_port)) != 0

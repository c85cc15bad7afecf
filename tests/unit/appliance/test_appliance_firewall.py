"""The nftables ruleset, loaded for real in a throwaway network namespace (N7, S6).

Two namespaces joined by a veth pair: "box" runs the rendered ruleset, "net" plays the office
network and the internet (listeners on tcp/443 and tcp/8443, and a client for inbound tries).
Connections are made as specific uids with setpriv, so `meta skuid` is what is tested.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
KAIRAN, TUNNEL, OTHER, KIOSK = 4242, 4243, 4244, 4245
BOX, NET = "10.99.0.1", "10.99.0.2"

LISTENER = """
import socket, sys, threading
def serve(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((sys.argv[1], port)); s.listen(16)
    while True:
        c, _ = s.accept(); c.close()
for p in map(int, sys.argv[2:]):
    threading.Thread(target=serve, args=(p,), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""
CONNECT = (
    "import socket,sys\n"
    "try:\n socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=0.6).close()\n"
    "except OSError:\n sys.exit(1)\n"
)


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


@pytest.fixture
def namespaces(tmp_path: Path) -> Iterator[tuple[str, str]]:
    if os.geteuid() != 0:
        pytest.fail("the firewall test needs root (ip netns); CI runs as root")
    box, net = f"kt-box-{os.getpid()}", f"kt-net-{os.getpid()}"
    sh("ip", "netns", "add", box)
    sh("ip", "netns", "add", net)
    listener = None
    try:
        sh(
            "ip",
            "link",
            "add",
            "kt-veth0",
            "netns",
            box,
            "type",
            "veth",
            "peer",
            "name",
            "kt-veth1",
            "netns",
            net,
        )
        for ns, dev, addr in ((box, "kt-veth0", BOX), (net, "kt-veth1", NET)):
            sh("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        ruleset = (REPO / "provisioning" / "nftables" / "kairan.nft.in").read_text()
        for key, value in {
            "@RELAY_V4_ELEMENTS@": f"elements = {{ {NET} }}",
            "@RELAY_V6_ELEMENTS@": "",
            "@STAFF_V4_ELEMENTS@": "",
            "@STAFF_V6_ELEMENTS@": "",
            "@MAIL_V4_ELEMENTS@": f"elements = {{ {NET} }}",
            "@MAIL_V6_ELEMENTS@": "",
            "@MAIL_PORTS@": "587, 993",
            "@DNS_UIDS@": f"0, {KAIRAN}, {TUNNEL}",
            "@NTP_UIDS@": "0",
            "@KAIRAN_UID@": str(KAIRAN),
            "@TUNNEL_UID@": str(TUNNEL),
            "@APT_UIDS@": "42",
            "@RELAY_SSH_PORT@": "2222",
            "@PRINTER_V4_ELEMENTS@": f"elements = {{ {NET} }}",
            "@PRINTER_V6_ELEMENTS@": "",
            "@PRINTER_PORT@": "9100",
            "@KIOSK_UID@": str(KIOSK),
        }.items():
            ruleset = ruleset.replace(key, value)
        path = tmp_path / "kairan.nft"
        path.write_text(ruleset)
        sh("ip", "netns", "exec", box, "nft", "-f", str(path))
        listener = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                net,
                sys.executable,
                "-c",
                LISTENER,
                NET,
                "443",
                "8443",
                "2222",
                "587",
                "993",
                "9100",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert listener.stdout is not None and listener.stdout.readline().strip() == "ready"
        yield box, net
    finally:
        if listener is not None:
            listener.kill()
            listener.wait()
        subprocess.run(["ip", "netns", "del", box], check=False)
        subprocess.run(["ip", "netns", "del", net], check=False)


def connect(ns: str, uid: int, host: str, port: int) -> bool:
    result = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            ns,
            "setpriv",
            f"--reuid={uid}",
            f"--regid={uid}",
            "--clear-groups",
            sys.executable,
            "-c",
            CONNECT,
            host,
            str(port),
        ],
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


def test_outbound_only_for_the_service_users(namespaces) -> None:
    """N7, S6: from the box, tcp/443 opens only for kairan and kairan-tunnel; other ports are
    dropped even for them; any other user gets nothing; the tunnel user reaches the relay's ssh
    port, the daemon does not."""
    box, _ = namespaces
    started = time.monotonic()
    assert connect(box, KAIRAN, NET, 443)
    assert connect(box, TUNNEL, NET, 443)
    assert not connect(box, KAIRAN, NET, 8443)
    assert not connect(box, OTHER, NET, 443)
    assert connect(box, TUNNEL, NET, 2222)
    assert not connect(box, KAIRAN, NET, 2222)
    # The mail channel: only the daemon, only to the mail hosts' mail ports.
    assert connect(box, KAIRAN, NET, 587)
    assert connect(box, KAIRAN, NET, 993)
    assert not connect(box, TUNNEL, NET, 587)
    assert not connect(box, OTHER, NET, 993)
    # The kiosk's network printer: only the kiosk user, only the printer port.
    assert connect(box, KIOSK, NET, 9100)
    assert not connect(box, KAIRAN, NET, 9100)
    assert not connect(box, OTHER, NET, 9100)
    assert not connect(box, KIOSK, NET, 443)
    assert time.monotonic() - started < 25


def test_nothing_comes_in(namespaces) -> None:
    """N7: with no staff networks configured, no inbound connection reaches the box, while
    loopback inside the box keeps working."""
    box, net = namespaces
    server = subprocess.Popen(
        ["ip", "netns", "exec", box, sys.executable, "-c", LISTENER, "0.0.0.0", "22", "443"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        assert not connect(net, 0, BOX, 22)
        assert not connect(net, 0, BOX, 443)
        assert connect(box, OTHER, "127.0.0.1", 22)
    finally:
        server.kill()
        server.wait()

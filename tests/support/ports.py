"""Test ports that no other process on this shared machine will be handed meanwhile."""

from __future__ import annotations

import random
import socket
from pathlib import Path


def _ephemeral_range() -> tuple[int, int]:
    low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    return int(low), int(high)


def free_port() -> int:
    """A port that is free now and that no other process will be handed meanwhile.

    The port is chosen at random BELOW the kernel's ephemeral range and only checked with a
    throwaway bind: sshd binds it for real seconds later. A port from bind(("127.0.0.1", 0))
    comes from the ephemeral range, where every other process on this (shared) machine gets its
    bind(0) and connect() ports, so in between another test suite could take it: then ssh's
    forward fails and a foreign listener answers on "our" port."""
    low, _ = _ephemeral_range()
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(max(1024, low - 12000), low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port below the ephemeral range")

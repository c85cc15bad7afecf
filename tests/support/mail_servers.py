"""Real mail servers for the mail channel tests (kairand.simulator.mailbed): dovecot as the
registration mailbox and aiosmtpd as the city's relay, on ports no other process takes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from kairand.simulator import mailbed
from kairand.simulator.mailbed import PASSWORD, USER, Dovecot, Relay, client_tls, make_cert
from tests.support.ports import free_port

__all__ = ["PASSWORD", "USER", "Dovecot", "Relay", "client_tls", "dovecot", "make_cert", "relay"]


@contextlib.contextmanager
def dovecot(tmp: Path) -> Iterator[Dovecot]:
    with mailbed.dovecot(tmp, free_port()) as server:
        yield server


@contextlib.contextmanager
def relay() -> Iterator[Relay]:
    with mailbed.relay(free_port()) as server:
        yield server

"""The demo's mail channel: a local mail test bed (dovecot as the registration
mailbox, aiosmtpd as the city's relay; kairand.simulator.mailbed) and the simulator's
mail-using guardians (kairand.simulator.mail_residents), so a trainee sees guardians register
by 空メール and receive alerts by mail next to the LINE residents.

Needs Debian's dovecot (`dovecot-imapd`); without it the demo runs with LINE only and says so.
Everything listens on loopback; the dovecot process dies with the demo.
"""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path

import keyring

from kairand.config import Config
from kairand.keys import secrets
from kairand.keys.backends import SERVICE
from kairand.simulator import mailbed
from kairand.simulator.mail_residents import MailTown, demo_guardians

REGISTRATION = "touroku@city.example.jp"
AUTHSERV = "mx.city.example.jp"
MAIL_DIR = "mail"
"""Folder of the test bed (dovecot's configuration, mailbox and certificate) in the demo."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def config_section(directory: Path) -> str:
    """The [mail] section of a demo configuration (appended once, with fixed ports)."""
    cert = directory.resolve() / MAIL_DIR / "cert.pem"
    return (
        "\n[mail]\n"
        "# Demo only: the local mail test bed (dovecot + aiosmtpd on loopback) and the\n"
        "# simulator's mail-using guardians (kairand.demo_mail).\n"
        "enabled = true\n"
        'from_address = "みなと市 防災メール <alert@city.example.jp>"\n'
        f'registration_address = "{REGISTRATION}"\n'
        f'authserv_id = "{AUTHSERV}"\n'
        'smtp_host = "127.0.0.1"\n'
        f"smtp_port = {_free_port()}\n"
        'smtp_security = "none"\n'
        'imap_host = "localhost"\n'
        f"imap_port = {_free_port()}\n"
        f'imap_username = "{mailbed.USER}"\n'
        f'ca_file = "{cert}"\n'
        "poll_seconds = 30\n"
        "send_poll_seconds = 1\n"
    )


def add_to_config(config_path: Path) -> bool:
    """Add the [mail] section to a demo configuration once, when dovecot is installed."""
    text = config_path.read_text(encoding="utf-8")
    if "\n[mail]\n" in text:
        return True
    if not mailbed.available():
        return False
    config_path.write_text(text + config_section(config_path.parent), encoding="utf-8")
    return True


def provision(config: Config) -> None:
    """The mailbox password in the demo's keyring (select_keyring(config) was called)."""
    keyring.set_password(SERVICE, secrets.MAIL_IMAP_PASSWORD, mailbed.PASSWORD)


def start(
    config: Config, directory: Path, stack: contextlib.ExitStack, seed: int = 0
) -> MailTown | None:
    """Start the test bed and the guardians (they send their 空メール at once); None when the
    demo has no mail channel. Everything stops when STACK closes."""
    if not config.mail.enabled or not mailbed.available():
        return None
    box = stack.enter_context(mailbed.dovecot(directory / MAIL_DIR, config.mail.imap_port))
    town = MailTown(box, demo_guardians(), registration=REGISTRATION, authserv=AUTHSERV, seed=seed)
    stack.enter_context(mailbed.relay(config.mail.smtp_port, on_message=town.on_message))
    stack.callback(town.close)
    town.start()
    return town

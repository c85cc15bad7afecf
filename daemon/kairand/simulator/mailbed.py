"""A local mail test bed for the mail channel, used by the demo and the tests:
Debian's dovecot (IMAP4rev1 over TLS, `dovecot-imapd`) started in a folder of its own as the
city's registration mailbox, and aiosmtpd as the city's SMTP relay. Real servers, no stand-in:
the daemon talks to them exactly as to a city's. The dovecot process dies with its parent
(PR_SET_PDEATHSIG) and is stopped when the context ends."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import datetime
import email
import email.policy
import grp
import imaplib
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SmtpServer
from aiosmtpd.smtp import Envelope, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def dovecot_binary() -> str:
    """Looked up when needed, not at import (an import inside an event loop must not block)."""
    return shutil.which("dovecot") or "/usr/sbin/dovecot"


USER = "kairan-reg"
PASSWORD = "imap-test-password"  # noqa: S105 - the loopback test bed's mailbox, not a secret


def make_cert(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
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
    key_path.chmod(0o600)
    return cert_path, key_path


def client_tls(cert: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cert))
    return context


@dataclass
class Dovecot:
    port: int
    cert: Path
    process: subprocess.Popen[bytes]

    def imap(self) -> imaplib.IMAP4_SSL:
        client = imaplib.IMAP4_SSL("localhost", self.port, ssl_context=client_tls(self.cert))
        client.login(USER, PASSWORD)
        client.select("INBOX")
        return client

    def append(self, raw: bytes) -> None:
        """Deliver RAW into the registration mailbox (as the city's mail server would)."""
        client = self.imap()
        try:
            status, detail = client.append("INBOX", None, None, raw)
            if status != "OK":
                raise RuntimeError(f"APPEND refused: {detail!r}")
        finally:
            client.logout()

    def count(self) -> int:
        client = self.imap()
        try:
            status, data = client.search(None, "ALL")
            if status != "OK":
                raise RuntimeError("SEARCH refused")
            return len(data[0].split())
        finally:
            client.logout()


PR_SET_PDEATHSIG = 1


def available() -> bool:
    """Whether dovecot is installed (Debian: dovecot-imapd)."""
    return os.access(dovecot_binary(), os.X_OK)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _wait_port(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise TimeoutError(f"dovecot did not listen on {port}")


@contextlib.contextmanager
def dovecot(tmp: Path, port: int) -> Iterator[Dovecot]:
    """dovecot with one mailbox user, IMAPS on PORT (loopback), everything under TMP."""
    tmp = tmp.resolve()
    # The mail processes run as another user when started by root: the mailbox lives in a
    # directory of its own that they can traverse (TMP's parents may be 0700).
    mail_root = Path(tempfile.mkdtemp(prefix="kt-mail-", dir="/tmp"))
    mail_root.chmod(0o711)
    for sub in ("run", "state"):
        (tmp / sub).mkdir(parents=True, exist_ok=True)
    (mail_root / "mail").mkdir()
    cert, key = make_cert(tmp)
    me = pwd.getpwuid(os.getuid())
    if os.getuid() == 0:
        # Root: dovecot drops to its own system users; the mail files belong to "dovecot".
        login_user, internal_user = "dovenull", "dovecot"
        mail_owner = pwd.getpwnam("dovecot")
        os.chown(mail_root / "mail", mail_owner.pw_uid, mail_owner.pw_gid)
    else:
        login_user = internal_user = me.pw_name
        mail_owner = me
    conf = tmp / "dovecot.conf"
    conf.write_text(
        f"""
base_dir = {tmp}/run
state_dir = {tmp}/state
log_path = {tmp}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <{cert}
ssl_key = <{key}
default_login_user = {login_user}
default_internal_user = {internal_user}
default_internal_group = {grp.getgrgid(pwd.getpwnam(internal_user).pw_gid).gr_name}
first_valid_uid = {mail_owner.pw_uid}
mail_location = maildir:{mail_root}/mail/%u
auth_mechanisms = plain
disable_plaintext_auth = yes
passdb {{
  driver = static
  args = password={PASSWORD}
}}
userdb {{
  driver = static
  args = uid={mail_owner.pw_uid} gid={mail_owner.pw_gid} home={mail_root}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = {port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
""",
        encoding="utf-8",
    )
    process = subprocess.Popen(
        [dovecot_binary(), "-F", "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,
    )
    try:
        try:
            _wait_port(port, time.monotonic() + 15)
        except TimeoutError:
            process.kill()
            log = (tmp / "dovecot.log").read_text() if (tmp / "dovecot.log").exists() else ""
            stderr = process.communicate(timeout=5)[1].decode(errors="replace")
            raise RuntimeError(f"dovecot did not start: {stderr} {log[-2000:]}") from None
        yield Dovecot(port, cert, process)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        shutil.rmtree(mail_root, ignore_errors=True)


@dataclass
class Relay:
    """aiosmtpd as the city's relay: keeps every accepted message; can hold the final reply
    to DATA (the message is on the relay, the client waits) to test a crash at that moment."""

    port: int
    messages: list[Message] = field(default_factory=list)
    received: threading.Event = field(default_factory=threading.Event)
    hold: threading.Event | None = None
    on_message: Callable[[Message], None] | None = None
    """Called (on the relay's thread) with each accepted message instead of keeping it."""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(  # aiosmtpd's hook name
        self, server: SmtpServer, session: Session, envelope: Envelope
    ) -> str:
        raw = envelope.original_content or b""
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        if self.on_message is not None:
            self.on_message(msg)
            return "250 OK queued"
        with self._lock:
            self.messages.append(msg)
        self.received.set()
        if self.hold is not None:
            # The test's thread releases it: wait in a worker thread, not on the server loop.
            await asyncio.to_thread(self.hold.wait)
        return "250 OK queued"

    def take(self) -> list[Message]:
        with self._lock:
            out, self.messages[:] = list(self.messages), []
        self.received.clear()
        return out

    def wait_for(self, count: int, timeout: float = 15.0) -> list[Message]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.messages) >= count:
                    break
            time.sleep(0.01)
        return self.take()


@contextlib.contextmanager
def relay(port: int, on_message: Callable[[Message], None] | None = None) -> Iterator[Relay]:
    """aiosmtpd on 127.0.0.1:PORT (plain SMTP: loopback only, as mail.smtp_security = none
    allows)."""
    handler = Relay(port, on_message=on_message)
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler
    finally:
        if handler.hold is not None:
            handler.hold.set()
        controller.stop()
